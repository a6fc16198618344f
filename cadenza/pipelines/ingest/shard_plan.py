"""Which rows go to which shard, and which shards a run still has to (re)write.

The rule is stable: valid rows, in CSV order, are cut into consecutive groups of `shard_size`;
group i is shard i. Each shard's stats file records a digest of its plan (its keys, the sample rate
and the source template); a shard counts as done only when its stats file exists and the digest
matches, so changing --limit, --shard-size or --sample-rate redoes exactly the shards it changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cadenza.formats import shards, storage
from cadenza.musiccaps.schema import ClipRecord


@dataclass(frozen=True)
class ShardTask:
    """One shard to write: its rows, and with `retry_keys` only those rows are fetched again (the
    rows left pending by the last run, and with --retry-failed the failed ones)."""

    index: int
    name: str  # e.g. audio-000003.tar
    digest: str
    clips: tuple[dict[str, Any], ...]  # ClipRecord.to_dict() + "label_names"
    retry_keys: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".tar")

    def records(self) -> list[tuple[ClipRecord, list[str]]]:
        return [(ClipRecord.from_dict(c), list(c.get("label_names", []))) for c in self.clips]


def chunk(clips: list[ClipRecord], shard_size: int) -> list[list[ClipRecord]]:
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    return [clips[i : i + shard_size] for i in range(0, len(clips), shard_size)]


def plan_digest(clips: list[ClipRecord], *, sample_rate: int, source_url_template: str) -> str:
    blob = json.dumps(
        {"keys": [c.key for c in clips], "sample_rate": sample_rate, "source": source_url_template},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def shard_paths(out: str, name: str) -> tuple[str, str]:
    """(tar path, failures jsonl path) of shard `name`."""
    stem = name.removesuffix(".tar")
    return storage.join(out, "shards", name), storage.join(out, "failures", f"{stem}.jsonl")


def shard_failed_keys(out: str, name: str) -> list[str]:
    """Keys of the rows the shard's last run recorded as failed."""
    _, fail_path = shard_paths(out, name)
    if not storage.exists(fail_path):
        return []
    fs, p = storage.filesystem(fail_path)
    with fs.open(p, "rb") as f:
        return [json.loads(line)["key"] for line in f if line.strip()]


def plan_tasks(
    clips: list[ClipRecord],
    names: dict[str, list[str]],
    *,
    out: str,
    prefix: str,
    shard_size: int,
    sample_rate: int,
    source_url_template: str,
    retry_failed: bool,
) -> tuple[list[str], list[ShardTask]]:
    """All shard names of the plan, and the tasks this run must do (skipping finished shards)."""
    all_names: list[str] = []
    tasks: list[ShardTask] = []
    for i, group in enumerate(chunk(clips, shard_size)):
        name = shards.shard_name(prefix, i)
        all_names.append(name)
        digest = plan_digest(group, sample_rate=sample_rate, source_url_template=source_url_template)
        tar_path, _ = shard_paths(out, name)
        rows = tuple({**c.to_dict(), "label_names": names.get(c.key, [])} for c in group)
        stats = shards.read_stats(tar_path) if shards.is_complete(tar_path) else {}
        if stats.get("plan_digest") != digest:
            tasks.append(ShardTask(i, name, digest, rows))
            continue
        # rows a session-side failure left pending are always fetched again; failed ones on request
        again = set(stats.get("pending", [])) | (set(shard_failed_keys(out, name)) if retry_failed else set())
        if again:
            tasks.append(ShardTask(i, name, digest, rows, retry_keys=tuple(sorted(again))))
    return all_names, tasks


def stale_shards(out: str, prefix: str, planned: list[str]) -> list[str]:
    """Shards (tars complete or not, and finished shards without a tar) in `out` with our prefix that the
    current plan does not have, as tar paths."""
    keep = set(planned)
    shard_dir = storage.join(out, "shards")
    found = {t.rsplit("/", 1)[-1] for t in shards.list_shards(shard_dir, complete_only=False)}
    found |= set(shards.finished_shard_names(shard_dir))
    return [storage.join(shard_dir, n) for n in sorted(found) if n.startswith(f"{prefix}-") and n not in keep]
