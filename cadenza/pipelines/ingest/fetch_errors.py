"""Why a download failed, in one word: yt-dlp's exceptions and messages -> `FetchError(category)`.

The categories, and which side of the download each one blames, are in `cadenza.formats.failures`. The
message patterns follow the texts yt-dlp prints for YouTube (as users quote them in its issue tracker):
"Sign in to confirm you're not a bot", "The current session has been rate-limited by YouTube",
"n challenge solving failed", "The uploader has not made this video available in your country", ...
Session-side patterns are tried first: YouTube words a rate limit as "Video unavailable. This content
isn't available, try again later", which must not read as a removed video.
"""

from __future__ import annotations

import re


class FetchError(RuntimeError):
    def __init__(self, category: str, message: str, *, transient: bool = False):
        super().__init__(message)
        self.category = category
        self.message = message
        self.transient = transient

    def __str__(self) -> str:
        return f"{self.category}: {self.message}"


_BOT_CHECK = r"not a bot|not a robot|unusual traffic|captcha"
_MESSAGE_CATEGORIES: list[tuple[str, str, bool]] = [
    # (regex on the lower-cased message, category, transient); first match wins
    (_BOT_CHECK, "bot_check", True),
    (r"rate.?limited|try again later|http error 429|too many requests", "rate_limited", True),
    (r"no supported javascript runtime", "js_runtime_missing", False),
    (r"(n challenge|signature) solving failed", "js_challenge_failed", False),
    (r"not available on this app", "client_rejected", False),
    (r"private video|video is private", "private", False),
    (r"removed|terminated|no longer available|account .* closed|copyright", "removed", False),
    (r"sign in to confirm your age|age[- ]restricted|inappropriate", "age_restricted", False),
    (r"(not|n't) (made this video )?available in your country|geo.?restrict", "geo_blocked", False),
    (r"members[- ]only|join this channel", "members_only", False),
    (r"unsupported url|no video formats|requested format is not available", "not_audio", False),
    (r"video unavailable|this video is unavailable|is not available", "unavailable", False),
    (r"larger than max-filesize", "too_large", False),
    (r"timed? ?out", "timeout", True),
    (r"bytes read, .* more expected|incomplete ?read|content too short|did not get any data", "truncated", True),
    (r"connection (reset|refused|aborted)|remote end closed|broken pipe|connection.*closed", "connection", True),
    (r"http error 5\d\d|server error|bad gateway|service unavailable", "server_error", True),
    (r"http error 404|not found", "not_found", False),
    (r"http error 403|forbidden", "forbidden", False),
    (r"http error 410|gone", "gone", False),
]
_JS_WARNINGS = [(p, c) for p, c, _ in _MESSAGE_CATEGORIES if c in ("js_runtime_missing", "js_challenge_failed")]
_STATUS_CATEGORIES = {403: "forbidden", 404: "not_found", 410: "gone", 429: "rate_limited"}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        info = getattr(e, "exc_info", None)
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__, info[1] if info else None]
    return seen


def _body(http_error: object) -> str:
    """The start of an HTTP error's body: a bot check says so only there (status 429 or 403)."""
    try:
        return http_error.response.read(64 * 1024).decode("utf-8", "replace")  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 (already closed or consumed: the status alone has to do)
        return ""


def _match(text: str) -> tuple[str, bool] | None:
    text = text.lower()
    for pattern, category, transient in _MESSAGE_CATEGORIES:
        if re.search(pattern, text):
            return category, transient
    return None


def classify(exc: BaseException, log_lines: list[str] | None = None, *, js_runtime_found: bool = True) -> FetchError:
    """Turn whatever yt-dlp raised into a FetchError with a category and a transient flag.

    `log_lines`: yt-dlp's recent messages (its warnings say when a JS challenge failed before the
    error says only "Requested format is not available"); `js_runtime_found`: whether this process
    has a JS runtime, since yt-dlp warns about a missing one only once per instance.
    """
    import socket

    from yt_dlp.networking.exceptions import HTTPError, TransportError

    chain = _chain(exc)
    message = re.sub(r"\s+", " ", str(exc)).strip().removeprefix("ERROR: ")[:500]
    for e in chain:
        if isinstance(e, HTTPError):
            status = e.status
            if status in (403, 429) and re.search(_BOT_CHECK, _body(e).lower()):
                return FetchError("bot_check", message, transient=True)
            if status in _STATUS_CATEGORIES:
                return FetchError(_STATUS_CATEGORIES[status], message, transient=status == 429)
            if 500 <= status < 600:
                return FetchError("server_error", message, transient=True)
            if 300 <= status < 400:  # a redirect raised rather than followed: a loop or too many hops
                return FetchError("redirect_loop", message, transient=False)
            return FetchError(f"http_{status}", message, transient=False)
    for e in chain:
        if isinstance(e, socket.timeout | TimeoutError):
            return FetchError("timeout", message, transient=True)
        if isinstance(e, ConnectionError):
            return FetchError("connection", message, transient=True)
    lines = log_lines or []
    found = _match(message)
    if found is None or found[0] == "not_audio":
        # no usable format: on YouTube that is what a failed JS challenge looks like
        for line in lines:
            for pattern, category in _JS_WARNINGS:
                if re.search(pattern, line.lower()):
                    return FetchError(category, message, transient=False)
        if found is not None and not js_runtime_found and "[youtube]" in message.lower():
            return FetchError("js_runtime_missing", message, transient=False)
    found = found or _match(" ".join(lines[-5:]))
    if found is not None:
        return FetchError(found[0], message, transient=found[1])
    if any(isinstance(e, TransportError) for e in chain):
        return FetchError("connection", message, transient=True)
    return FetchError("fetch_error", message, transient=False)
