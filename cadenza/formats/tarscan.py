"""Fast member listing for the uncompressed USTAR tars cadenza writes.

Python's `tarfile` parses every header field in Python; for token shards (thousands of small members)
that costs more than decoding the tokens. A shard is read whole (token shards are small) and its
headers are walked directly: name, size, type and checksum, then the member is a zero-copy slice.
Tars using PAX/GNU extensions are left to `tarfile` (`Unsupported`).
"""

from __future__ import annotations

import io
import tarfile

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)


class Unsupported(Exception):
    """A header this scanner does not handle (PAX or GNU long names): use tarfile instead."""


def _octal(field: bytes) -> int:
    field = field.split(b"\0", 1)[0].strip()
    return int(field, 8) if field else 0


def scan(data: bytes) -> tuple[list[tuple[str, int, int]], Exception | None]:
    """(name, start, end) of every regular member, and the error that stopped the scan, if any (a damaged
    header, a truncation, or a member that is not a regular file).

    Members before a damaged or truncated spot are returned, so a caller can salvage them."""
    entries: list[tuple[str, int, int]] = []
    pos, n = 0, len(data)
    while True:
        if pos + BLOCK > n:
            return entries, tarfile.ReadError(f"truncated: no end-of-archive marker after {pos} bytes")
        header = data[pos : pos + BLOCK]
        if header == ZERO_BLOCK:
            return entries, None
        stored = _octal(header[148:156])
        if sum(header[:148]) + 8 * 32 + sum(header[156:]) != stored:
            return entries, tarfile.ReadError(f"bad header checksum at byte {pos}")
        kind = header[156:157]
        if kind in (b"x", b"g", b"L", b"K"):
            raise Unsupported(f"tar extension header {kind!r}")
        size = _octal(header[124:136])
        start, end = pos + BLOCK, pos + BLOCK + size
        if end > n:
            return entries, tarfile.ReadError(f"unexpected end of data in member at byte {pos}")
        name = header[:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0]
            name = prefix + b"/" + name if prefix else name
        if kind not in (b"0", b"\0"):  # links, devices, fifos, directories: never in a shard we wrote
            return entries, ValueError(f"refusing tar member {name.decode('utf-8', 'replace')!r} (type {kind!r}, "
                                       "not a regular file)")
        entries.append((name.decode("utf-8"), start, end))
        pos = start + (size + BLOCK - 1) // BLOCK * BLOCK


def scan_with_tarfile(data: bytes) -> tuple[list[tuple[str, int, int]], Exception | None]:
    """`scan` for the tars it does not handle (PAX/GNU headers), with the same rules, via `tarfile`."""
    entries: list[tuple[str, int, int]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    return entries, ValueError(f"refusing tar member {member.name!r} (not a regular file)")
                start, end = member.offset_data, member.offset_data + member.size
                if end > len(data):
                    return entries, tarfile.ReadError(f"unexpected end of data in member at byte {member.offset}")
                entries.append((member.name, start, end))
            # tarfile ends quietly at a missing end-of-archive marker; a cut download must not look whole
            if data[tar.offset : tar.offset + BLOCK] != ZERO_BLOCK:
                return entries, tarfile.ReadError(f"truncated: no end-of-archive marker after {tar.offset} bytes")
    except tarfile.TarError as exc:
        return entries, exc
    return entries, None
