"""Which side of a failed download a failure category blames: the clip, or the session that fetched it.

Survival figures ("which cultures' music disappears from YouTube") may only count what happened to
the clip. A bot check, a rate limit or a missing JS runtime says nothing about the clip, only about
the machine, account and moment of the download, so such rows stay *pending*: the ingest writes no
failure record for them, a rerun tries them again, and the audit leaves them out of survival rates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from cadenza.formats.storage import filesystem, join, write_bytes_atomic

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


@dataclass
class FailureRecord:
    """Why one input did not make it into a shard. Every input ends in a shard or in one of these."""

    key: str
    stage: str  # validate | fetch | decode | clip | tokenize | ...
    category: str  # short machine-readable reason, e.g. not_found, http_429, too_short
    message: str
    attempts: int = 0
    ytid: str = ""
    row: int = 0
    shard: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FailureRecord:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def failures_jsonl(records: Iterable[FailureRecord]) -> bytes:
    lines = [json.dumps(r.to_dict(), sort_keys=True, default=str) for r in sorted(records, key=lambda r: r.key)]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def write_failures(path: str, records: Iterable[FailureRecord]) -> None:
    """The records as `path` (.jsonl, what a resume reads) and as a table beside it (.parquet)."""
    from cadenza.formats.tables import failures_parquet

    records = list(records)
    write_bytes_atomic(path, failures_jsonl(records))
    write_bytes_atomic(path.removesuffix(".jsonl") + ".parquet", failures_parquet(r.to_dict() for r in records))


def read_failures(directory: str) -> list[FailureRecord]:
    """All failure records in `directory`/*.jsonl."""
    fs, p = filesystem(directory)
    if not fs.exists(p):
        return []
    out: list[FailureRecord] = []
    for f in sorted(fs.ls(p, detail=False)):
        if f.endswith(".jsonl"):
            out.extend(read_failure_file(join(directory, f.rsplit("/", 1)[-1])))
    return out


def read_failure_file(path: str) -> list[FailureRecord]:
    """The failure records of one jsonl file ([] when there is none)."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        return []
    with fs.open(p, "rb") as fh:
        return [FailureRecord.from_dict(json.loads(line)) for line in fh if line.strip()]
