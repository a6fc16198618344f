"""The Beam side of the ingest: one element per shard, whose rows are fetched concurrently.

Fetching is waiting (on YouTube, ~300 ms per request and several requests per clip), so each
`WriteAudioShardFn` keeps a bounded thread pool and runs up to `max_concurrent_fetches` clips at once;
the runner spreads shards over workers (Reshuffle before it), so total concurrency is workers x bound.
A shard is written only when all its rows have ended in a sample, a failure record, or *pending*
(a session-side failure: bot check, rate limit, network; listed in the stats file, no record): tar,
then failures, then the stats file that marks it complete. The next run fetches its pending rows
again. The fetch threads of a worker process share one SessionGuard (request budget and breaker).
Nothing here depends on a particular runner.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from cadenza.formats import shards, storage
from cadenza.formats.failures import FailureRecord, read_failure_file, write_failures
from cadenza.musiccaps.schema import ClipRecord
from cadenza.pipelines.ingest.clipjob import ClipJobConfig, ClipResult, process_clip
from cadenza.pipelines.ingest.fetch import Fetcher
from cadenza.pipelines.ingest.session_guard import guard_for
from cadenza.pipelines.ingest.shard_plan import ShardTask, shard_paths

NAMESPACE = "cadenza.ingest"
log = logging.getLogger(__name__)


class WriteAudioShardFn(beam.DoFn):
    def __init__(self, job: ClipJobConfig, out: str, max_concurrent_fetches: int):
        self.job = job
        self.out = out
        self.max_concurrent_fetches = max(1, max_concurrent_fetches)
        self.fetched = Metrics.counter(NAMESPACE, "clips_fetched")
        self.failed = Metrics.counter(NAMESPACE, "clips_failed")
        self.retried = Metrics.counter(NAMESPACE, "clips_retried")
        self.pending = Metrics.counter(NAMESPACE, "clips_pending")
        self.bytes = Metrics.counter(NAMESPACE, "bytes_fetched")
        self.flac_bytes = Metrics.counter(NAMESPACE, "flac_bytes")
        self.shards_written = Metrics.counter(NAMESPACE, "shards_written")
        self.audio_ms = Metrics.distribution(NAMESPACE, "clip_duration_ms")

    def setup(self) -> None:
        from cadenza.common.ffmpeg import ensure_ffmpeg

        ensure_ffmpeg()  # yt-dlp's download ranges only find ffmpeg on PATH, in every worker
        self._pool = ThreadPoolExecutor(self.max_concurrent_fetches, thread_name_prefix="fetch")
        self._guard = guard_for(self.job.session)
        self._fetcher = Fetcher(self.job.fetch, tempfile.mkdtemp(prefix="cadenza-ingest-"))

    def teardown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._fetcher.close()

    def process(self, task: ShardTask) -> Any:
        tar_path, fail_path = shard_paths(self.out, task.name)
        rows = task.records()
        keep: list[dict[str, Any]] = []
        kept_failures: list[FailureRecord] = []
        if task.retry_keys is not None:
            retry = set(task.retry_keys)
            # a shard whose rows all failed or are pending has no tar
            old = shards.iter_tar_samples(tar_path) if storage.exists(tar_path) else []
            keep = [s for s in old if s["__key__"] not in retry]
            for s in keep:
                s.pop("__url__", None)
            kept_failures = [f for f in read_failure_file(fail_path) if f.key not in retry]
            rows = [(c, n) for c, n in rows if c.key in retry]
        # jitter seeded per shard so retries are spread but a rerun behaves the same
        rng = random.Random(zlib.crc32(task.name.encode()))  # noqa: S311
        results: list[ClipResult] = list(self._pool.map(lambda cn: self._one(cn[0], cn[1], task.name, rng), rows))
        samples = keep + [r.sample for r in results if r.sample is not None]
        failures = kept_failures + [r.failure for r in results if r.failure is not None]
        pending = {r.key: r.pending for r in results if r.pending}
        for r in results:
            if r.sample is not None:
                self.fetched.inc()
                self.bytes.inc(r.bytes_fetched)
                self.flac_bytes.inc(len(r.sample["flac"]))
            if r.attempts > 1 or (r.failure and r.failure.attempts > 1):
                self.retried.inc()
        for f in failures[len(kept_failures):]:
            self.failed.inc()
            Metrics.counter(NAMESPACE, f"failed_{f.category}").inc()
        self.pending.inc(len(pending))
        stats = shard_stats(task, samples, failures, pending, blocked=self._guard.tripped)
        for s in samples:
            self.audio_ms.update(int(round(1000 * _num_samples(s) / self.job.sample_rate)))
        # a retry rewrites a finished shard: drop its marker first so a crash leaves it "to redo"
        while (stats_file := shards.find_stats(tar_path)) is not None:
            fs, p = storage.filesystem(stats_file)
            fs.rm(p)
        write_failures(fail_path, failures)
        shards.write_shard(tar_path, samples, stats)
        self.shards_written.inc()
        yield {"shard": task.name, **stats}


    def _one(self, clip: ClipRecord, names: list[str], shard: str, rng: random.Random) -> ClipResult:
        try:
            return process_clip(clip, self.job, label_names=names, shard=shard, guard=self._guard, rng=rng,
                                fetcher=self._fetcher)
        except Exception as exc:  # noqa: BLE001 (one odd file must not fail the shard, nor vanish)
            log.exception("unexpected error on %s", clip.key)
            return ClipResult(clip.key, failure=FailureRecord(
                key=clip.key, stage="process", category="internal_error", message=repr(exc)[:500], attempts=1,
                ytid=clip.ytid, row=clip.row, shard=shard))


def _num_samples(sample: dict[str, Any]) -> int:
    return int(json.loads(sample["json"])["num_samples"])


def shard_stats(task: ShardTask, samples: list[dict[str, Any]], failures: list[Any],
                pending: dict[str, str] | None = None, *, blocked: bool = False) -> dict[str, Any]:
    """Deterministic per-shard stats (no wall times, so reruns give identical files).

    `pending`: key -> session-side category of the rows left for the next run; `blocked`: the worker's
    breaker had tripped (YouTube blocks the session) when the shard was written."""
    metas = [json.loads(s["json"]) for s in samples]
    pending = pending or {}
    by_cat = Counter(f.category for f in failures)
    return {
        "kind": "audio",
        "shard": task.name,
        "plan_digest": task.digest,
        "rows": len(task.clips),
        "clips_written": len(samples),
        "failures": len(failures),
        "failures_by_category": dict(sorted(by_cat.items())),
        "pending": dict(sorted(pending.items())),
        "pending_by_category": dict(sorted(Counter(pending.values()).items())),
        "session_blocked": blocked,
        "audio_seconds": round(sum(m["duration_s"] for m in metas), 3),
        "flac_bytes": sum(len(s["flac"]) for s in samples),
        "sample_rate": metas[0]["sample_rate"] if metas else None,
        "fetch_modes": dict(sorted(Counter(m.get("fetch_mode", "") for m in metas).items())),
        "keys": sorted(m["key"] for m in metas),
    }


def build_pipeline(p: beam.Pipeline, tasks: list[ShardTask], job: ClipJobConfig, out: str,
                   max_concurrent_fetches: int) -> beam.PCollection:
    return (
        p
        | "Shards" >> beam.Create(tasks, reshuffle=False)
        | "Spread" >> beam.Reshuffle()
        | "FetchClipWrite" >> beam.ParDo(WriteAudioShardFn(job, out, max_concurrent_fetches))
    )
