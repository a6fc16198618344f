"""A loopback HTTP media server that misbehaves on purpose.

Tests, benchmarks and the offline demo point the ingest's `--source-url-template` at it instead of
YouTube. It serves the files of one directory under `/media/NAME`, with HTTP Range support (or, in
`range_support=False` mode, a server that ignores Range like many CDNs' fallbacks do), an optional
latency per request (YouTube answers in roughly 300 ms), and per-file faults:

    404 403 410            that status, forever
    500                    server error, forever
    429-then-200           429 for the first `times` requests (default 1), then the file
    truncated              full Content-Length announced, half the body sent, connection closed
    html                   200 with an HTML page instead of media
    oversized              announces a 4 GiB body and streams zeros until the client gives up
    drop                   closes the connection without any response
    redirect-loop          302 to the same URL, forever
    bot-check              429 with Google's "unusual traffic" page: the bot check YouTube puts in front of
                           a session it distrusts (HTTP side of "Sign in to confirm you're not a bot")
    rate-limit             429 with Retry-After and YouTube's "rate-limited ... try again later" text

A fault is keyed by file name ("abc.m4a") or by its stem ("abc"), so one ytid misbehaves in every
format; the name "*" applies a fault to every request (a whole session being blocked), and a fault
of the name itself wins over it. `Fault(kind, first=N)` misbehaves only on the first N requests for
that name, then serves the file: a flaky source that a retry gets past. `alias=` serves one file under
every name that has no file of its own (one short clip standing in for thousands of ytids in load
runs). A name without an extension ("/media/abc") serves the file of that stem whatever its format, as
a YouTube URL names a video, not a format (`url_template("")`). It binds 127.0.0.1 only.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FAULT_KINDS = ("404", "403", "410", "500", "429-then-200", "truncated", "html", "oversized", "drop", "redirect-loop",
               "bot-check", "rate-limit")
ANY_NAME = "*"
CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
    ".webm": "audio/webm",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
}
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_OVERSIZED_LEN = 4 * 1024**3
_HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>Please sign in.</p></body></html>\n"
# what an IP-level bot check answers (google.com/sorry), and a session rate limit, with their wording
BOT_CHECK_PAGE = (
    b"<html><head><title>https://www.youtube.com/</title></head><body><div>Our systems have detected unusual "
    b"traffic from your computer network. This page checks to see if it's really you sending the requests, "
    b"and not a robot.</div><div>Sign in to confirm you\xe2\x80\x99re not a bot.</div></body></html>\n"
)
RATE_LIMIT_PAGE = (
    b"Video unavailable. This content isn't available, try again later. The current session has been "
    b"rate-limited by YouTube for up to an hour.\n"
)


@dataclass
class Fault:
    kind: str
    times: int = 1  # for 429-then-200: how many 429s before the file
    first: int = 0  # > 0: only the first `first` requests misbehave, later ones get the file

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass  # quiet: tests read .requests instead

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib naming)
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        name = self.path.split("?", 1)[0].removeprefix("/media/")
        owner._count(name)
        delay = owner._latency()
        if delay:
            time.sleep(delay)
        if not self.path.startswith("/media/") or "/" in name or name.startswith(".") or not name:
            return self._status(404)
        fault = owner.fault_for(name)
        if fault is not None and fault.first and owner._hit(name) > fault.first:
            fault = None  # a transient fault that has run its course
        if fault is not None:
            if fault.kind in ("404", "403", "410", "500"):
                return self._status(int(fault.kind))
            if fault.kind == "429-then-200" and owner._hit(name) <= fault.times:
                return self._status(429, extra={"Retry-After": "0"})
            if fault.kind == "bot-check":
                return self._status(429, body=BOT_CHECK_PAGE, ctype="text/html; charset=utf-8")
            if fault.kind == "rate-limit":
                return self._status(429, extra={"Retry-After": "3600"}, body=RATE_LIMIT_PAGE)
            if fault.kind == "drop":
                return self._hang_up()
            if fault.kind == "redirect-loop":
                return self._status(302, extra={"Location": self.path})
            if fault.kind == "html":
                return self._body(_HTML, "text/html; charset=utf-8", head=head)
            if fault.kind == "oversized":
                return self._oversized(head=head)
        path = owner.root / name
        if not path.is_file() and "." not in name:
            path = owner.file_of_stem(name) or path
        if not path.is_file() and owner.alias is not None:
            path = owner.root / (owner.alias + Path(name).suffix)
        if not path.is_file():
            return self._status(404)
        data = path.read_bytes()
        ctype = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        if fault is not None and fault.kind == "truncated":
            return self._truncated(data, ctype, head=head)
        rng = self.headers.get("Range")
        if owner.range_support and rng and (m := _RANGE_RE.match(rng.strip())):
            first, last = m.groups()
            size = len(data)
            if first == "":
                start, end = max(0, size - int(last or 0)), size - 1
            else:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            if start >= size or start > end:
                return self._status(416, extra={"Content-Range": f"bytes */{size}"})
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            return self._send(data[start : end + 1], ctype, head=head, started=True)
        return self._body(data, ctype, head=head)

    def _status(self, code: int, extra: dict[str, str] | None = None, body: bytes | None = None,
                ctype: str = "text/plain") -> None:
        body = body if body is not None else f"{code}\n".encode()
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self, data: bytes, ctype: str, *, head: bool) -> None:
        self.send_response(200)
        self._send(data, ctype, head=head, started=True)

    def _send(self, data: bytes, ctype: str, *, head: bool, started: bool) -> None:
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self.server.owner.range_support:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not head:
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # client stopped reading: normal for probes

    def _truncated(self, data: bytes, ctype: str, *, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
        self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client left first

    def _oversized(self, *, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/mp4")
        self.send_header("Content-Length", str(_OVERSIZED_LEN))
        self.end_headers()
        self.close_connection = True
        if head:
            return
        chunk = bytes(64 * 1024)
        try:
            for _ in range(_OVERSIZED_LEN // len(chunk)):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    owner: MediaServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up is normal here
            super().handle_error(request, client_address)


class MediaServer:
    """Serve `root`'s files at http://127.0.0.1:PORT/media/NAME; use as a context manager."""

    def __init__(
        self,
        root: str | Path,
        *,
        range_support: bool = True,
        latency_s: float | tuple[float, float] = 0.0,  # fixed, or (low, high): uniform per request, seeded
        faults: dict[str, Fault | str] | None = None,
        port: int = 0,
        alias: str | None = None,
    ):
        self.root = Path(root)
        self.alias = alias  # stem of the file served for names without a file of their own
        self.range_support = range_support
        self.latency_s = latency_s
        self._rng = random.Random(0)  # noqa: S311 (simulated latency, not security)
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.request_log: list[tuple[float, str]] = []  # (time.monotonic() on arrival, name), in order
        self._fault_hits: Counter[str] = Counter()
        for name, fault in (faults or {}).items():
            self.set_fault(name, fault)
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- faults and bookkeeping -------------------------------------------------------------
    def set_fault(self, name: str, fault: Fault | str | None) -> None:
        with self._lock:
            if fault is None:
                self._faults.pop(name, None)
            else:
                self._faults[name] = fault if isinstance(fault, Fault) else Fault(fault)
            self._fault_hits.pop(name, None)

    def fault_for(self, name: str) -> Fault | None:
        with self._lock:
            return self._faults.get(name) or self._faults.get(name.rsplit(".", 1)[0]) or self._faults.get(ANY_NAME)

    def file_of_stem(self, stem: str) -> Path | None:
        """The served file named `stem.EXT` (first in CONTENT_TYPES order), for a URL without an extension."""
        for ext in CONTENT_TYPES:
            if (path := self.root / f"{stem}{ext}").is_file():
                return path
        return None

    def _latency(self) -> float:
        if isinstance(self.latency_s, tuple):
            with self._lock:
                return self._rng.uniform(*self.latency_s)
        return self.latency_s

    def _count(self, name: str) -> None:
        with self._lock:
            self.requests[name] += 1
            self.request_log.append((time.monotonic(), name))

    def _hit(self, name: str) -> int:
        """How many requests the fault matching `name` has seen (shared by all formats of a stem)."""
        with self._lock:
            stem = name.rsplit(".", 1)[0]
            key = name if name in self._faults else stem if stem in self._faults else ANY_NAME
            self._fault_hits[key] += 1
            return self._fault_hits[key]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.request_log.clear()
            self._fault_hits.clear()

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("MediaServer is not running; use it as a context manager or call start()")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_template(self, ext: str = "m4a") -> str:
        """The ingest's --source-url-template for files named `{ytid}.{ext}` (ext "": any format)."""
        return f"{self.base_url}/media/{{ytid}}" + (f".{ext}" if ext else "")

    def start(self) -> MediaServer:
        self._httpd = _Server(("127.0.0.1", self._port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="mediaserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- generated media -------------------------------------------------------------------------------
MEDIA_CODECS = {
    "wav": ["-c:a", "pcm_s16le"],
    "m4a": ["-c:a", "aac", "-b:a", "96k"],
    "webm": ["-c:a", "libopus", "-b:a", "64k"],
    "opus": ["-c:a", "libopus", "-b:a", "64k"],
    "flac": ["-c:a", "flac"],
}


def synth_audio(seconds: float, sr: int = 44100, *, seed: int = 0, channels: int = 2) -> Any:
    """A few seconds of music-like audio: a seeded chord with a slow tremolo and a little noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    freqs = 110.0 * 2 ** (rng.integers(0, 24, size=3) / 12)
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs) / 3
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)) + 0.01 * rng.standard_normal(len(t))
    out = np.stack([x * (1 - 0.2 * c) for c in range(channels)])
    return (0.5 * out).astype(np.float32)


def write_media(directory: str | Path, stem: str, seconds: float, formats: tuple[str, ...] = ("m4a",), *,
                sr: int = 44100, seed: int = 0) -> list[Path]:
    """Write `stem.{fmt}` files of synthesized audio with ffmpeg; returns their paths."""
    import subprocess

    import soundfile as sf

    from cadenza.common.ffmpeg import ensure_ffmpeg

    ffmpeg = ensure_ffmpeg()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / f".{stem}.src.wav"
    sf.write(src, synth_audio(seconds, sr, seed=seed).T, sr, subtype="FLOAT")
    out = []
    for fmt in formats:
        path = directory / f"{stem}.{fmt}"
        cmd = [ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-i", str(src), *MEDIA_CODECS[fmt],
               "-map_metadata", "-1", "-fflags", "+bitexact", str(path)]
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(path)
    src.unlink()
    return out
