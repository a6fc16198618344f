"""The loopback-only guard of tests/conftest.py refuses and records any other address, in this process and in
the processes a test starts, and lets loopback through."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import loopback_guard
import pytest

# TEST-NET-1 (RFC 5737): never routed; the guard refuses it before a packet could leave anyway
OUTSIDE = ("192.0.2.1", 9)


@pytest.fixture
def private_log(tmp_path, monkeypatch):
    """This test's refusals go to its own log, so the suite's guard does not fail the test for them."""
    path = tmp_path / "sockets.log"
    monkeypatch.setenv(loopback_guard.LOG_ENV, str(path))
    return path


def test_a_non_loopback_connect_is_refused_and_recorded_in_process(private_log):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(PermissionError, match="192.0.2.1"), s:
        s.connect(OUTSIDE)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(PermissionError), u:
        u.sendto(b"x", ("8.8.8.8", 53))
    lines = [json.loads(x) for x in private_log.read_text().splitlines()]
    assert [x["address"] for x in lines] == [list(OUTSIDE), ["8.8.8.8", 53]]


def test_a_child_process_is_guarded_too(private_log):
    code = "import socket; socket.create_connection(('192.0.2.1', 9), timeout=1)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert r.returncode != 0 and "test guard: refused a socket to 192.0.2.1" in r.stderr
    assert json.loads(private_log.read_text())["address"] == list(OUTSIDE)


def test_loopback_passes(private_log):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted = threading.Thread(target=lambda: server.accept()[0].close())
        accepted.start()
        with socket.create_connection(("localhost", port), timeout=5):
            pass
        accepted.join(5)
    assert not private_log.exists()


@pytest.mark.parametrize("host,ok", [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
                                     ("::ffff:127.0.0.1", True), ("localhost", True), ("10.0.0.1", False),
                                     ("192.168.1.1", False), ("example.com", False), ("::ffff:8.8.8.8", False)])
def test_what_counts_as_loopback(host, ok):
    assert loopback_guard.is_loopback(host) is ok
