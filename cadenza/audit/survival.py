"""Which clips survived download: from an ingest output dir, or from a list of available ytids.

Ingest contract: a sample in a completed shard (`shards/*.tar` with its
`stats/*.stats.json`) survived; a
FailureRecord in `failures/*.jsonl` whose category blames the clip (removed, private, geo-blocked...,
see cadenza.formats.failures) was lost. Everything else is left out of survival rates, but counted:
"pending" is a clip the ingest has not finished, or one a session-side failure (bot check, rate
limit, network) left for the next run; "unresolved" is a failure record that blames neither side
for sure (an error of ours, an unknown yt-dlp error). Geo-blocking depends on where the download
ran: the ingest manifest's `session` (vantage, yt-dlp, JS runtime, PO token provider) says where.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from cadenza.common.sources import SourceError
from cadenza.formats.failures import CLIP, SESSION, read_failures, side_of
from cadenza.formats.shards import list_shards, stats_path
from cadenza.formats.storage import exists, filesystem, join, read_json
from cadenza.musiccaps.schema import YTID_RE, ClipRecord

SURVIVED, LOST, PENDING, UNRESOLVED = "survived", "lost", "pending", "unresolved"
STATUSES = (SURVIVED, LOST, PENDING, UNRESOLVED)


@dataclass
class Survival:
    """Per clip key: survived / lost / pending, and why the lost ones were lost."""

    source: str
    kind: str  # "ingest" | "available"
    status: dict[str, str]  # clip key -> one of STATUSES
    lost_category: dict[str, str] = field(default_factory=dict)  # clip key -> failure category
    # clip key -> why it is pending (session-side category; "not_run" when the ingest never got to it)
    pending_category: dict[str, str] = field(default_factory=dict)
    unresolved_category: dict[str, str] = field(default_factory=dict)
    manifest: dict | None = None
    unknown_keys: list[str] = field(default_factory=list)  # in the ingest but not in the CSV

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for s in self.status.values():
            out[s] += 1
        return out


def shard_keys(tar_path: str) -> list[str]:
    """Sample keys in a shard, from member names only (nothing is extracted)."""
    fs, p = filesystem(tar_path)
    keys: list[str] = []
    with fs.open(p, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            key = base.partition(".")[0]
            if not keys or keys[-1] != key:
                keys.append(key)
    return keys


def survival_from_ingest(ingest_dir: str, clips: list[ClipRecord]) -> Survival:
    if not exists(join(ingest_dir, "shards")) and not exists(join(ingest_dir, "failures")):
        raise SourceError(f"{ingest_dir}: not an ingest output dir (no shards/ or failures/ inside)")
    survived: set[str] = set()
    waiting: dict[str, str] = {}
    for tar in list_shards(join(ingest_dir, "shards")):
        survived.update(shard_keys(tar))
        waiting.update(read_json(stats_path(tar)).get("pending") or {})
    failures = {r.key: r.category for r in read_failures(join(ingest_dir, "failures"))}
    manifest_path = join(ingest_dir, "manifest.json")
    manifest = read_json(manifest_path) if exists(manifest_path) else None
    status: dict[str, str] = {}
    lost: dict[str, str] = {}
    pending: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for c in clips:
        category = failures.get(c.key)
        if c.key in survived:
            status[c.key] = SURVIVED  # a retried clip that finally made it counts as survived
        elif category is not None and side_of(category) == CLIP:
            status[c.key], lost[c.key] = LOST, category
        elif category is not None and side_of(category) != SESSION:
            status[c.key], unresolved[c.key] = UNRESOLVED, category
        else:  # not fetched yet, or a session-side failure (an older ingest wrote records for those)
            status[c.key], pending[c.key] = PENDING, category or waiting.get(c.key, "not_run")
    known = {c.key for c in clips}
    unknown = sorted((survived | set(failures)) - known)
    return Survival(ingest_dir, "ingest", status, lost, pending, unresolved, manifest, unknown)


def read_available(path: str | os.PathLike[str]) -> set[str]:
    """ytids, one per line (blank lines and # comments ignored), or a JSON list; bad lines are errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"{p}: cannot read the available-ytid list: {exc}") from exc
    if text.lstrip().startswith("["):
        try:
            items = [str(x) for x in json.loads(text)]
        except ValueError as exc:
            raise SourceError(f"{p}: not a JSON list of ytids: {exc}") from exc
    else:
        items = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    out: set[str] = set()
    for lineno, item in enumerate(items, 1):
        if not item:
            continue
        ytid = item.split(",", 1)[0].strip()
        if not YTID_RE.match(ytid):
            raise SourceError(f"{p}: line {lineno}: {item!r} is not a YouTube id (11 characters of A-Za-z0-9_-)")
        out.add(ytid)
    return out


def survival_from_available(path: str | os.PathLike[str], clips: list[ClipRecord]) -> Survival:
    available = read_available(path)
    status = {c.key: SURVIVED if c.ytid in available else LOST for c in clips}
    lost = {k: "unavailable" for k, s in status.items() if s == LOST}
    known = {c.ytid for c in clips}
    return Survival(str(path), "available", status, lost, manifest=None, unknown_keys=sorted(available - known))
