"""Download one media file with yt-dlp's Python API, safely, and say precisely why when it fails.

Safety: options are built here from our config only (the Python API reads no config files), so no
input can add exec or post-processor hooks; no playlists; output goes only into a temporary directory
the caller owns, under a fixed file name; a size cap (checked on Content-Length and while streaming);
socket timeouts; yt-dlp's own retries are off because `with_retries` below does them with backoff.
YouTube needs a JS runtime for its challenges: every worker hands yt-dlp the deno binary of the `deno`
wheel installed beside cadenza (found where the worker runs, so remote workers find their own).

Failures become `FetchError(category, message, transient)` (see fetch_errors). Transient ones (HTTP
429 and 5xx, bot checks, timeouts, resets, truncated bodies) are retried by `with_retries`; permanent
ones (403/404/410, private/removed videos, not media, too large) are not.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cadenza.musiccaps.schema import YTID_RE
from cadenza.pipelines.ingest.fetch_errors import FetchError, classify

T = TypeVar("T")


@dataclass(frozen=True)
class FetchOptions:
    socket_timeout_s: float = 30.0
    max_filesize_bytes: int = 200 * 1024 * 1024
    cookies: str | None = None
    sleep_requests: float = 0.0
    format: str = "bestaudio/best"
    # only what MusicCaps needs: YouTube, and direct media URLs (mirrors, the loopback server).
    # Also saves ~150 ms of CPU per clip that yt-dlp spends ordering all ~1800 extractors.
    extractors: tuple[str, ...] = ("youtube", "generic")
    cookies_from_browser: str | None = None  # BROWSER[+KEYRING][:PROFILE], as yt-dlp's --cookies-from-browser
    pot_provider_url: str | None = None  # base URL of a bgutil PO token HTTP server (the `pot` extra)


POT_PROVIDER_ARG = "youtubepot-bgutilhttp"  # extractor-args key of bgutil's HTTP provider
_BROWSER_SPEC_RE = re.compile(r"^(?P<name>[^+:]+)(?:\+(?P<keyring>[^:]+))?(?::(?P<profile>.+))?$")


def deno_path() -> str | None:
    """The deno binary shipped by the `deno` wheel of this interpreter (else one on PATH), or None.

    Resolved in the process that downloads, so a remote worker finds the binary its own install put there.
    """
    try:
        from deno import find_deno_bin

        return find_deno_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("deno")


def js_runtimes() -> dict[str, dict[str, str]]:
    """yt-dlp's `js_runtimes` param: deno at the path we found (yt-dlp then looks nowhere else)."""
    path = deno_path()
    return {"deno": {"path": path}} if path else {"deno": {}}


def browser_cookies_spec(spec: str) -> tuple[str, str | None, str | None, None]:
    """`BROWSER[+KEYRING][:PROFILE]` -> yt-dlp's `cookiesfrombrowser` tuple; ValueError names what is wrong."""
    from yt_dlp.cookies import SUPPORTED_BROWSERS, SUPPORTED_KEYRINGS

    m = _BROWSER_SPEC_RE.match(spec.strip())
    if not m:
        raise ValueError(f"--cookies-from-browser {spec!r}: expected BROWSER[+KEYRING][:PROFILE]")
    name = m["name"].strip().lower()
    keyring = m["keyring"].strip().upper() if m["keyring"] else None
    if name not in SUPPORTED_BROWSERS:
        known = ", ".join(sorted(SUPPORTED_BROWSERS))
        raise ValueError(f"--cookies-from-browser: unknown browser {name!r}; one of {known}")
    if keyring is not None and keyring not in SUPPORTED_KEYRINGS:
        known = ", ".join(sorted(SUPPORTED_KEYRINGS))
        raise ValueError(f"--cookies-from-browser: unknown keyring {keyring!r}; one of {known}")
    return name, m["profile"], keyring, None


def validate_template(template: str) -> str:
    if "{ytid}" not in template:
        raise ValueError(f"source URL template {template!r} must contain '{{ytid}}'")
    if not re.match(r"^https?://", template):
        raise ValueError(f"source URL template {template!r} must be an http:// or https:// URL")
    return template


def is_youtube(template: str) -> bool:
    """Whether a source URL template points at YouTube (its limits, budget and checks apply)."""
    from urllib.parse import urlsplit

    host = (urlsplit(template.replace("{ytid}", "x")).hostname or "").lower()
    return host in ("youtube.com", "youtu.be") or host.endswith(".youtube.com")


def build_url(template: str, ytid: str) -> str:
    """The source URL for a ytid; the ytid is checked before it goes anywhere near a URL."""
    if not YTID_RE.match(ytid):
        raise FetchError("invalid_ytid", f"{ytid!r} is not a YouTube id")
    return validate_template(template).replace("{ytid}", ytid)


class _Log:
    """yt-dlp logger that keeps the last messages, so failures carry yt-dlp's own words."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _keep(self, msg: str) -> None:
        self.lines = [*self.lines[-30:], msg]

    def debug(self, msg: str) -> None:
        self._keep(msg)

    info = warning = error = debug


class _TooLarge(Exception):
    pass


def ydl_options(dest_dir: Path, opts: FetchOptions, log: _Log) -> dict[str, Any]:
    cap = opts.max_filesize_bytes

    def size_guard(d: dict[str, Any]) -> None:
        # max_filesize only sees Content-Length; this also stops chunked or lying servers
        if (d.get("downloaded_bytes") or 0) > cap:
            raise _TooLarge(f"more than {cap} bytes")

    o: dict[str, Any] = {
        "format": opts.format,
        "allowed_extractors": list(opts.extractors),
        "paths": {"home": str(dest_dir), "temp": str(dest_dir)},
        "outtmpl": {"default": "media.%(ext)s"},
        "noplaylist": True,
        "playlistend": 1,
        "quiet": True,
        "no_warnings": False,  # warnings reach only our logger, and say why YouTube gave no formats
        "noprogress": True,
        "logger": log,
        "socket_timeout": opts.socket_timeout_s,
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "file_access_retries": 0,
        "max_filesize": cap,
        "progress_hooks": [size_guard],
        "overwrites": True,
        "continuedl": False,
        "cachedir": False,
        "updatetime": False,
        "restrictfilenames": True,
        "writethumbnail": False,
        "writesubtitles": False,
        "writeinfojson": False,
        "postprocessors": [],
        "check_formats": False,
        "force_keyframes_at_cuts": False,
        "color": {"stdout": "never", "stderr": "never"},
        "js_runtimes": js_runtimes(),
    }
    if opts.cookies:
        o["cookiefile"] = opts.cookies
    if opts.cookies_from_browser:
        o["cookiesfrombrowser"] = browser_cookies_spec(opts.cookies_from_browser)
    if opts.pot_provider_url:
        o["extractor_args"] = {POT_PROVIDER_ARG: {"base_url": [opts.pot_provider_url]}}
    if opts.sleep_requests > 0:
        o["sleep_interval_requests"] = opts.sleep_requests
    return o


class Fetcher:
    """Downloads with one yt-dlp instance and one private directory per thread.

    Making a YoutubeDL costs ~100 ms of CPU (extractor set-up, TLS context), more than the rest
    of a clip's Python work, so each thread keeps its own; a thread fetches one clip at a time,
    and the file it returns stays valid until that thread's next download.
    """

    def __init__(self, opts: FetchOptions, root: str | Path | None = None):
        from cadenza.common.ffmpeg import ensure_ffmpeg

        ensure_ffmpeg()  # download ranges find ffmpeg only on PATH (yt-dlp ignores ffmpeg_location there)
        self.opts = opts
        self.js_runtime_found = deno_path() is not None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="cadenza-fetch-"))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []

    def _state(self) -> Any:
        st = self._local
        if not hasattr(st, "ydl"):
            import yt_dlp

            st.dir = Path(tempfile.mkdtemp(prefix="t-", dir=self._ensure_root()))
            st.log = _Log()
            st.ydl = yt_dlp.YoutubeDL(ydl_options(st.dir, self.opts, st.log))
            with self._lock:
                self._all.append(st.ydl)
        return st

    def prepare(self) -> None:
        """Make this thread's yt-dlp instance now (~100 ms of CPU), so that a paced fetch starts on time."""
        self._state()

    def _ensure_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def download(self, url: str, *, window: tuple[float, float] | None = None) -> Path:
        """Fetch `url` (only `window`, in seconds, when given); return the file written."""
        from yt_dlp.utils import download_range_func

        st = self._state()
        for old in st.dir.iterdir():
            if old.is_file():
                old.unlink()
        st.log.lines = []
        # ffmpeg does the cut; yt-dlp's download ranges find it only on PATH (ensure_ffmpeg)
        if window is not None:
            st.ydl.params["download_ranges"] = download_range_func(None, [window])
        else:
            st.ydl.params.pop("download_ranges", None)  # yt-dlp wants it absent, not None
        try:
            info = st.ydl.extract_info(url, download=False)
            if window is not None:
                _require_range_support(st.ydl, info)
            st.ydl.process_ie_result(info, download=True)
        except FetchError:
            raise
        except _TooLarge as exc:
            raise FetchError("too_large", f"{url}: download passed the size cap ({exc})") from None
        except Exception as exc:  # noqa: BLE001 (yt-dlp raises many types; classify names them)
            raise classify(exc, st.log.lines, js_runtime_found=self.js_runtime_found) from None
        cap = self.opts.max_filesize_bytes
        if any("larger than max-filesize" in line for line in st.log.lines):
            raise FetchError("too_large", f"{url}: larger than the {cap}-byte cap")
        files = [p for p in st.dir.iterdir()
                 if p.is_file() and p.name.startswith("media.") and not p.name.endswith((".part", ".ytdl", ".temp"))]
        if not files:
            tail = "; ".join(st.log.lines[-3:])
            raise FetchError("no_file", f"{url}: yt-dlp reported success but wrote no file ({tail})")
        size = files[0].stat().st_size
        if size > cap:
            raise FetchError("too_large", f"{url}: {size} bytes > {cap}-byte cap")
        return files[0]

    def close(self) -> None:
        with self._lock:
            for ydl in self._all:
                ydl.close()
            self._all.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _require_range_support(ydl: Any, info: dict[str, Any]) -> None:
    """A window download needs HTTP Range on the media URL; without it ffmpeg's seek can silently
    give the wrong part of the file (wav) or a near-empty one (m4a, opus). Ask for one byte."""
    from yt_dlp.networking import Request

    for fmt in info.get("requested_formats") or [info]:
        media_url = fmt.get("url")
        if not media_url or fmt.get("protocol", "https") not in ("http", "https"):
            raise FetchError("no_range_support", f"format {fmt.get('format_id')} is not a plain HTTP download")
        headers = {**(fmt.get("http_headers") or {}), "Range": "bytes=0-0"}
        with ydl.urlopen(Request(media_url, headers=headers)) as resp:
            if resp.status != 206 or not resp.headers.get("Content-Range"):
                raise FetchError("no_range_support", f"{media_url} answered a Range request with {resp.status}")


# -- retries and politeness ---------------------------------------------------------------------
def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(max, base * 2**(attempt-1))]."""
    return rng.uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))


def with_retries(
    fn: Callable[[], T],
    *,
    max_attempts: int,
    backoff_base_s: float,
    backoff_max_s: float = 60.0,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """Call fn until it succeeds or raises a non-transient FetchError; return (result, attempts).

    A FetchError raised out of here carries `.attempts`.
    """
    rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(), attempt
        except FetchError as exc:
            exc.attempts = attempt  # type: ignore[attr-defined]
            if not exc.transient or attempt >= max_attempts:
                raise
            sleep(backoff_delay(attempt, backoff_base_s, backoff_max_s, rng))


class Pacer:
    """At least `interval_s` between the starts of fetches made through it, across threads."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if self.interval_s <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval_s
        if start > now:
            time.sleep(start - now)
