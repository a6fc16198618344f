"""Can this machine download from YouTube? Ask yt-dlp itself, configured exactly as the ingest does.

`check()` builds a YoutubeDL from `fetch.ydl_options` (so with the deno binary cadenza hands it),
reads what yt-dlp reports in verbose mode (version, JS runtimes) and what its YouTube extractor
registers (JS challenge providers, PO token providers), then looks at ffmpeg and the cookies file.
Nothing here touches the network. Each problem comes with one line saying what to do; "error" ones
mean YouTube ingest would be degraded (missing formats or every clip failing), "warning" ones mean
it works but will be slower or blocked sooner.
"""

from __future__ import annotations

import http.cookiejar
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from cadenza.pipelines.ingest.fetch import FetchOptions, _Log, deno_path, ydl_options

ERROR, WARNING = "error", "warning"
YOUTUBE_HOSTS = ("youtube.com", "youtu.be")
# cookies that only a signed-in browser has: without them, cookies do not lift the bot check
AUTH_COOKIES = ("SAPISID", "__Secure-3PAPISID", "__Secure-1PSID", "SID")


@dataclass
class Problem:
    severity: str  # ERROR | WARNING
    what: str
    fix: str

    def line(self) -> str:
        return f"{self.severity}: {self.what}: {self.fix}"


@dataclass
class Report:
    yt_dlp: str
    yt_dlp_ejs: str | None
    js_runtimes: list[dict[str, Any]]  # what yt-dlp resolved: name, version, path, available
    js_runtimes_line: str  # yt-dlp's own "[debug] JS runtimes: ..." text
    challenge_providers: list[dict[str, Any]]  # name, available
    pot_providers: list[dict[str, Any]]  # name, version, available
    ffmpeg: dict[str, Any]
    cookies: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return any(p.severity == ERROR for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "degraded": self.degraded}

    def lines(self) -> list[str]:
        def listing(items: list[dict[str, Any]]) -> str:
            return ", ".join(i["name"] + ("" if i["available"] else " (unavailable)") for i in items) or "none"

        out = [
            f"yt-dlp: {self.yt_dlp} (yt-dlp-ejs {self.yt_dlp_ejs or 'not installed'})",
            f"JS runtimes: {self.js_runtimes_line}"
            + "".join(f" [{r['name']} at {r['path']}]" for r in self.js_runtimes if r["path"]),
            f"JS challenge providers: {listing(self.challenge_providers)}",
            f"PO token providers: {listing(self.pot_providers)}",
            f"ffmpeg: {self.ffmpeg.get('version') or 'not found'}"
            + (f" ({self.ffmpeg['path']})" if self.ffmpeg.get("path") else ""),
            f"cookies: {_cookies_line(self.cookies)}",
        ]
        return out + [p.line() for p in self.problems]


def _cookies_line(c: dict[str, Any]) -> str:
    if not c.get("file"):
        return "none given"
    if c.get("error"):
        return f"{c['file']}: {c['error']}"
    return (f"{c['file']}: Netscape format, {c['youtube_cookies']} youtube.com cookies "
            f"({c['expired']} expired), signed in: {'yes' if c['signed_in'] else 'no'}, "
            f"earliest expiry: {c['earliest_expiry'] or 'none (session cookies)'}")


def _version(pkg: str) -> str | None:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def inspect_cookies(path: str, now: float | None = None) -> dict[str, Any]:
    """Parse a cookies file the way yt-dlp will: Netscape format, YouTube cookies, their expiry."""
    from yt_dlp.cookies import YoutubeDLCookieJar

    now = time.time() if now is None else now
    out: dict[str, Any] = {"file": path, "error": None, "youtube_cookies": 0, "expired": 0, "signed_in": False,
                           "earliest_expiry": None}
    jar = YoutubeDLCookieJar(path)
    try:
        jar.load()
    except (OSError, http.cookiejar.LoadError) as exc:
        out["error"] = f"cannot be read as a Netscape cookies file ({str(exc).strip()[:200]})"
        return out
    yt = [c for c in jar if c.domain.lstrip(".").endswith(YOUTUBE_HOSTS)]
    expiries = sorted(c.expires for c in yt if c.expires)
    out.update(
        youtube_cookies=len(yt),
        expired=sum(1 for c in yt if c.expires and c.expires < now),
        signed_in=any(c.name in AUTH_COOKIES for c in yt),
        earliest_expiry=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiries[0])) if expiries else None,
    )
    return out


def _ffmpeg() -> dict[str, Any]:
    from cadenza.common.ffmpeg import FFmpegNotFound, ensure_ffmpeg

    try:
        path = ensure_ffmpeg()
        first = subprocess.run([path, "-version"], capture_output=True, text=True, check=False, timeout=30).stdout
        return {"path": path, "version": first.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" ", 1)[0]}
    except (FFmpegNotFound, OSError, subprocess.SubprocessError) as exc:
        return {"path": None, "version": None, "error": str(exc)[:200]}


def _providers(director: Any) -> list[dict[str, Any]]:
    return [
        {"name": p.PROVIDER_NAME, "version": getattr(p, "PROVIDER_VERSION", None), "available": bool(p.is_available())}
        for p in director.providers.values()
    ]


def _what_ytdlp_sees(opts: FetchOptions) -> dict[str, Any]:
    import yt_dlp

    log = _Log()
    with tempfile.TemporaryDirectory(prefix="cadenza-doctor-") as tmp:
        params = ydl_options(Path(tmp), opts, log) | {"verbose": True}
        params.pop("cookiesfrombrowser", None)  # reading a browser's store is the ingest's business
        with yt_dlp.YoutubeDL(params) as ydl:
            runtimes = []
            for name, rt in ydl._js_runtimes.items():
                info = rt.info if rt is not None else None
                runtimes.append({"name": name, "version": info.version if info else None,
                                 "path": info.path if info else None,
                                 "available": bool(info and info.supported)})
            ie = ydl.get_info_extractor("Youtube")
            ie.initialize()  # registers the challenge and PO token providers (no request is made)
            jsc, pot = _providers(ie._jsc_director), _providers(ie._pot_director)
    line = next((m.split("JS runtimes: ", 1)[1] for m in log.lines if "JS runtimes: " in m), "unknown")
    return {"yt_dlp": yt_dlp.version.__version__, "js_runtimes": runtimes, "js_runtimes_line": line,
            "challenge_providers": jsc, "pot_providers": pot}


def check(cookies: str | None = None, pot_provider_url: str | None = None, *, now: float | None = None) -> Report:
    """What YouTube ingest would run with here, and what is missing."""
    seen = _what_ytdlp_sees(FetchOptions(pot_provider_url=pot_provider_url))
    report = Report(yt_dlp_ejs=_version("yt-dlp-ejs"), ffmpeg=_ffmpeg(),
                    cookies=inspect_cookies(cookies, now) if cookies else {"file": None}, **seen)
    add = report.problems.append
    if not any(r["available"] for r in report.js_runtimes):
        where = deno_path()
        add(Problem(ERROR, "yt-dlp finds no JS runtime" + (f" (deno at {where} does not run)" if where else ""),
                    "pip install deno (cadenza's dependency; it ships the binary), or put deno on PATH"))
    elif not report.yt_dlp_ejs:
        add(Problem(ERROR, "yt-dlp-ejs (YouTube's challenge solver scripts) is not installed",
                    "pip install 'yt-dlp[default]'"))
    if not any(p["available"] for p in report.challenge_providers):
        add(Problem(ERROR, "no JS challenge provider is available: YouTube formats will be missing",
                    "install deno and 'yt-dlp[default]' in the environment that runs the ingest"))
    if not any(p["available"] for p in report.pot_providers):
        add(Problem(WARNING, "no PO token provider: YouTube allows about 300 videos an hour per session",
                    "pip install 'cadenza[pot]', run a bgutil PO token server and pass --pot-provider-url"))
    elif not pot_provider_url:
        add(Problem(WARNING, "a PO token provider is installed but no server address was given",
                    "pass --pot-provider-url URL, else it asks bgutil's default, http://127.0.0.1:4416"))
    if not report.ffmpeg.get("path"):
        add(Problem(ERROR, "ffmpeg is not available: clips cannot be cut",
                    "pip install imageio-ffmpeg, or install ffmpeg"))
    c = report.cookies
    if not c.get("file"):
        add(Problem(WARNING, "no cookies: sessions without cookies meet \"Sign in to confirm you're not a bot\" sooner",
                    "export youtube.com cookies from a signed-in browser (Netscape format) and pass --cookies FILE"))
    elif c.get("error"):
        add(Problem(ERROR, f"cookies file {c['file']} {c['error']}",
                    "export it again in Netscape format (the first line reads '# Netscape HTTP Cookie File')"))
    elif not c["youtube_cookies"]:
        add(Problem(ERROR, f"cookies file {c['file']} holds no youtube.com cookies",
                    "export the cookies of a browser signed in to youtube.com"))
    elif c["expired"] == c["youtube_cookies"]:
        add(Problem(ERROR, f"every youtube.com cookie in {c['file']} has expired", "export fresh cookies"))
    elif not c["signed_in"]:
        add(Problem(WARNING, f"cookies file {c['file']} has no signed-in session cookies",
                    "export cookies from a browser signed in to youtube.com"))
    return report
