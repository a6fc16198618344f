"""The test suite's promise that only loopback is contacted, enforced rather than kept by convention.

`install()` wraps the socket calls that reach a peer (connect, connect_ex, sendto, sendmsg). A call to an
address that is not loopback is refused before any packet leaves, and is appended to the file named by
$CADENZA_TEST_SOCKET_LOG. tests/conftest.py installs it in the test process and, through PYTHONPATH and the
`sitecustomize` beside this file, in every Python process a test starts (CLI runs, Beam workers, DAG
runs). A fixture there fails the test during which a line was added, so code that catches the refusal as a
network error still fails its test.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from typing import Any

LOG_ENV = "CADENZA_TEST_SOCKET_LOG"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name other than localhost would need DNS: not loopback
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # connecting to the unspecified address reaches this host on Linux
    return ip.is_loopback or ip.is_unspecified


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return  # Unix sockets, netlink, ...: never leave the machine
    host = str(address[0])
    if is_loopback(host):
        return
    path = os.environ.get(LOG_ENV)
    if path:
        line = json.dumps({"pid": os.getpid(), "address": [host, *address[1:2]], "argv": sys.argv[:3]})
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    raise PermissionError(f"test guard: refused a socket to {host} (tests may contact loopback only)")


def install() -> None:
    cls = socket.socket
    if getattr(cls, "_loopback_guard", False):
        return
    connect, connect_ex, sendto, sendmsg = cls.connect, cls.connect_ex, cls.sendto, cls.sendmsg

    def guarded_connect(self, address):
        _check(self, address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        _check(self, address)
        return connect_ex(self, address)

    def guarded_sendto(self, data, *args):
        _check(self, args[-1])
        return sendto(self, data, *args)

    def guarded_sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        if address is not None:
            _check(self, address)
            return sendmsg(self, buffers, ancdata, flags, address)
        return sendmsg(self, buffers, ancdata, flags)

    cls.connect, cls.connect_ex, cls.sendto, cls.sendmsg = (
        guarded_connect, guarded_connect_ex, guarded_sendto, guarded_sendmsg)
    cls._loopback_guard = True  # type: ignore[attr-defined]


def read_violations(path: str, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The lines appended to `path` since byte `offset`, and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()], offset + len(data)
