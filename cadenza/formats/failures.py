"""Which side of a failed download a failure category blames: the clip, or the session that fetched it.

Survival figures ("which cultures' music disappears from YouTube") may only count what happened to
the clip. A bot check, a rate limit or a missing JS runtime says nothing about the clip, only about
the machine, account and moment of the download, so such rows stay *pending*: the ingest writes no
failure record for them, a rerun tries them again, and the audit leaves them out of survival rates.
"""

from __future__ import annotations

# the video, or its media, is not there for anyone at this vantage: counted as lost
CLIP_SIDE = frozenset({
    "removed", "private", "geo_blocked", "age_restricted", "members_only", "not_found", "gone", "unavailable",
    "not_audio", "too_short", "too_large", "decode_error", "non_finite_audio",
})
# the session was refused or the network failed: the row stays pending, and a rerun retries it
SESSION_SIDE = frozenset({
    "bot_check", "rate_limited", "js_runtime_missing", "js_challenge_failed", "client_rejected", "forbidden",
    "timeout", "connection", "truncated", "server_error", "session_blocked",
})
# YouTube refusing this session as a whole: all fetch threads pause, and enough in a row stop the run
BLOCKING = frozenset({"bot_check", "rate_limited"})
# this machine cannot solve YouTube's JS challenges: waiting does not help, but enough in a row stop the run
JS_FAILURES = frozenset({"js_runtime_missing", "js_challenge_failed"})

CLIP, SESSION, OTHER = "clip", "session", "other"


def side_of(category: str) -> str:
    """"clip", "session", or "other" (a failure of ours or of a source we cannot read: recorded, not lost)."""
    if category in CLIP_SIDE:
        return CLIP
    if category in SESSION_SIDE:
        return SESSION
    return OTHER
