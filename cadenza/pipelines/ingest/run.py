"""`run_ingest`: MusicCaps CSV -> fetched, clipped, resampled audio in WebDataset shards.

The driver validates the CSV, plans shards (a stable rule, see shard_plan), skips the ones already
complete, runs the Beam pipeline over the rest, then writes the manifest from the shards' stats
files. Every input row ends in exactly one place: a shard sample, a failure record
(`failures/validate.jsonl` for rows validation rejected, `failures/{shard}.jsonl` for the others),
or pending: a session-side failure (bot check, rate limit, network; see cadenza.formats.failures) is
never the clip's loss, so it gets no record, the shard's stats list it, and the next run fetches it
again. When YouTube keeps blocking a worker's session its breaker trips, the run writes what it has
and `run_ingest` raises SessionBlockedError; running the same command again resumes.

Reproducibility: the tars contain a fetch time; set SOURCE_DATE_EPOCH (the reproducible-builds
convention) to pin it, and the same input gives byte-identical shards.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cadenza.common.config import StageConfig
from cadenza.formats import defaults, failures, shards, storage
from cadenza.formats.failures import JS_FAILURES
from cadenza.formats.index import write_samples_index
from cadenza.musiccaps.schema import ClipRecord, Reject
from cadenza.pipelines.ingest.clipjob import ClipJobConfig
from cadenza.pipelines.ingest.fetch import FetchOptions, browser_cookies_spec, is_youtube, validate_template
from cadenza.pipelines.ingest.session_guard import SessionLimits
from cadenza.pipelines.ingest.shard_plan import plan_tasks, shard_paths, stale_shards

log = logging.getLogger(__name__)
# the yt-dlp wiki's figure for one session without a PO token (about 1000 with one)
YOUTUBE_VIDEOS_PER_HOUR = 300.0


@dataclass
class IngestConfig(StageConfig):
    csv: str
    out: str
    source_url_template: str = defaults.YOUTUBE_URL_TEMPLATE
    limit: int | None = None  # only the first N data rows of the CSV
    shard_size: int = defaults.SHARD_SIZE
    sample_rate: int = defaults.SAMPLE_RATE
    retry_failed: bool = False
    cookies: str | None = None
    cookies_from_browser: str | None = None  # BROWSER[+KEYRING][:PROFILE]; the browser must be on the worker
    pot_provider_url: str | None = None  # bgutil PO token server, e.g. http://127.0.0.1:4416
    sleep_requests: float = 0.0
    max_concurrent_fetches: int = 16  # per worker
    # per worker process, i.e. per YouTube session; 0: no budget; None: 300 for YouTube, none elsewhere
    max_videos_per_hour: float | None = None
    max_blocked: int = 5  # bot checks / rate limits in a row (each after a pause) before the run stops
    # first pause of all fetch threads on a block, doubling with each one in a row; None: 60 s for
    # YouTube (its limits last up to an hour), 1 s for other sources
    block_pause_s: float | None = None
    vantage: str | None = None  # where the download runs (e.g. a country code): geo-blocking depends on it
    prefix: str = "audio"
    ontology: str | None = None  # AudioSet ontology.json (path or URL) for label names
    download_ranges: bool = True  # fetch only the window when the source allows it
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    socket_timeout_s: float = 30.0
    max_filesize_mb: float = 512.0
    progress: bool = True

    def validate(self) -> None:
        validate_template(self.source_url_template)
        if self.shard_size < 1:
            raise ValueError(f"--shard-size must be at least 1, got {self.shard_size}")
        if not 1000 <= self.sample_rate <= 192000:
            raise ValueError(f"--sample-rate {self.sample_rate} is not a plausible audio rate")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit: must be at least 1 (got {self.limit})")
        if self.max_concurrent_fetches < 1:
            raise ValueError("--max-concurrent-fetches must be at least 1")
        if self.max_videos_per_hour is not None and self.max_videos_per_hour < 0:
            raise ValueError(f"--max-videos-per-hour must be >= 0 (0: no budget), got {self.max_videos_per_hour}")
        if self.max_blocked < 1:
            raise ValueError(f"--max-blocked must be at least 1, got {self.max_blocked}")
        if self.block_pause_s is not None and self.block_pause_s < 0:
            raise ValueError(f"--block-pause must be >= 0 seconds, got {self.block_pause_s}")
        if self.vantage is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.vantage):
            raise ValueError(f"--vantage {self.vantage!r}: use a short label such as a country code (A-Z, 0-9, -_.:)")
        if self.cookies and not os.path.isfile(self.cookies):
            raise ValueError(f"--cookies: no such file: {self.cookies}")
        if self.cookies_from_browser:
            browser_cookies_spec(self.cookies_from_browser)
        if self.pot_provider_url and not re.match(r"^https?://[^/\s]+", self.pot_provider_url):
            raise ValueError(f"--pot-provider-url {self.pot_provider_url!r} must be an http(s) URL, e.g. http://127.0.0.1:4416")
        if "/" in self.prefix or "." in self.prefix or not self.prefix:
            raise ValueError(f"shard prefix {self.prefix!r} must be a plain name")

    def job(self, run_id: str = "") -> ClipJobConfig:
        return ClipJobConfig(
            source_url_template=self.source_url_template,
            sample_rate=self.sample_rate,
            fetch=FetchOptions(
                socket_timeout_s=self.socket_timeout_s,
                max_filesize_bytes=int(self.max_filesize_mb * 1024 * 1024),
                cookies=os.path.abspath(self.cookies) if self.cookies else None,
                sleep_requests=self.sleep_requests,
                cookies_from_browser=self.cookies_from_browser,
                pot_provider_url=self.pot_provider_url,
            ),
            download_ranges=self.download_ranges,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            fetched_at=_pinned_time(),
            session=self.session_limits(run_id),
        )

    def session_limits(self, run_id: str = "") -> SessionLimits:
        youtube = is_youtube(self.source_url_template)
        budget = self.max_videos_per_hour
        pause = self.block_pause_s
        return SessionLimits(
            max_videos_per_hour=(YOUTUBE_VIDEOS_PER_HOUR if youtube else 0.0) if budget is None else budget,
            max_blocked=self.max_blocked,
            block_pause_s=(60.0 if youtube else 1.0) if pause is None else pause,
            block_pause_max_s=1800.0 if youtube else 60.0,
            sleep_requests=self.sleep_requests,
            run_id=run_id,
        )


class SessionBlockedError(RuntimeError):
    """YouTube kept refusing the session; the manifest (written) says how many rows are pending."""

    def __init__(self, manifest: dict[str, Any]):
        self.manifest = manifest
        pending = manifest["rows_pending"]
        why = ", ".join(f"{k}: {v}" for k, v in manifest["pending_by_category"].items())
        if JS_FAILURES & set(manifest["pending_by_category"]):
            super().__init__(
                f"yt-dlp cannot solve YouTube's JS challenges here ({why}); {pending} rows are pending. Run "
                "`cadenza doctor` and install what it names (deno, yt-dlp[default]) or upgrade yt-dlp, then run "
                "the same command again to resume"
            )
            return
        super().__init__(
            f"YouTube is blocking this session ({why}); {pending} rows are pending. Pass --cookies FILE "
            "(or --cookies-from-browser), a PO token provider (--pot-provider-url, cadenza[pot]), or a lower "
            "--max-videos-per-hour, then run the same command again to resume"
        )


def _pinned_time() -> str | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reject_category(r: Reject) -> str:
    if r.reason.startswith("duplicate"):
        return "duplicate"
    if r.field == "<row>":
        return "malformed_row"
    return f"invalid_{r.field}"


def validation_failures(rejects: list[Reject]) -> list[failures.FailureRecord]:
    return [
        failures.FailureRecord(
            key=f"row{r.row:07d}",
            stage="validate",
            category=reject_category(r),
            message=str(r),
            ytid=r.ytid,
            row=r.row,
            extra={"field": r.field, "value": r.value, "line": r.line},
        )
        for r in rejects
    ]


def _label_names(clips: list[ClipRecord], ontology: str | None) -> dict[str, list[str]]:
    if not ontology:
        return {}
    from cadenza.musiccaps import load_ontology

    onto = load_ontology(ontology)
    return {c.key: [onto.names.get(m, m) for m in c.audioset_labels] for c in clips}


def _remove(path: str) -> None:
    if storage.exists(path):
        fs, p = storage.filesystem(path)
        fs.rm(p)


def _remove_partial_writes(out: str) -> None:
    """Temporary files a killed run left behind (atomic writes that never got renamed)."""
    for sub in ("shards", "failures", shards.STATS_DIR, shards.SAMPLES_DIR):
        storage.remove_partial_writes(storage.join(out, sub))


def run_ingest(config: IngestConfig, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Run the ingest and return the manifest (also written to OUT/manifest.json).

    Raises SessionBlockedError, after writing everything, when a worker's breaker tripped."""
    from cadenza.musiccaps import load_musiccaps
    from cadenza.pipelines.beam import make_pipeline, pipeline_options, run_to_completion
    from cadenza.pipelines.ingest.graph import build_pipeline
    from cadenza.pipelines.ingest.progress import ShardProgress

    config.validate()
    started = time.time()
    result = load_musiccaps(config.csv)
    clips, rejects = result.clips, result.rejects
    rows_in = result.rows_read
    if config.limit is not None:
        clips = [c for c in clips if c.row <= config.limit]
        rejects = [r for r in rejects if r.row <= config.limit]
        rows_in = len(clips) + len(rejects)
    out = storage.absolute(config.out)  # workers write there, whatever their working directory
    names = _label_names(clips, config.ontology)
    storage.makedirs(storage.join(out, "shards"))
    storage.makedirs(storage.join(out, "failures"))
    shards.migrate_layout(storage.join(out, "shards"))  # an output dir an older version wrote
    planned, tasks = plan_tasks(
        clips, names, out=out, prefix=config.prefix, shard_size=config.shard_size,
        sample_rate=config.sample_rate, source_url_template=config.source_url_template,
        retry_failed=config.retry_failed,
    )
    _remove_partial_writes(out)
    for tar in stale_shards(out, config.prefix, planned):
        log.warning("removing shard %s: not part of this run's plan (different --limit or --shard-size?)", tar)
        name = tar.rsplit("/", 1)[-1]
        tar_path, fail_path = shard_paths(out, name)
        for path in (shards.stats_path(tar), tar_path, fail_path, fail_path.removesuffix(".jsonl") + ".parquet",
                     shards.samples_table_path(tar)):
            _remove(path)
    failures.write_failures(storage.join(out, "failures", "validate.jsonl"), validation_failures(rejects))
    metrics: dict[str, Any] = {}
    if tasks:
        options = pipeline_options(beam_args, parallel_tasks=len(tasks))
        with ShardProgress(out, tasks, enabled=config.progress) as progress:
            p = make_pipeline(options)
            build_pipeline(p, tasks, config.job(run_id=uuid.uuid4().hex), out, config.max_concurrent_fetches)
            run = run_to_completion(p)
            progress.refresh()
        metrics = _counters(run)
    manifest = build_manifest(config, out, planned, rows_in, len(clips), rejects)
    manifest["run"] = {"shards_written": len(tasks), "seconds": round(time.time() - started, 1), "metrics": metrics}
    storage.write_json_atomic(storage.join(out, "manifest.json"), manifest)
    write_samples_index(out)
    if manifest["session"]["blocked"]:
        raise SessionBlockedError(manifest)
    return manifest


def _counters(run: Any) -> dict[str, int]:
    try:
        res = run.metrics().query()
    except Exception:  # noqa: BLE001 (some runners have no metrics API)
        return {}
    return {c.key.metric.name: c.committed or c.attempted for c in res.get("counters", [])}


def build_manifest(config: IngestConfig, out: str, planned: list[str], rows_in: int, rows_valid: int,
                   rejects: list[Reject]) -> dict[str, Any]:
    by_cat: Counter[str] = Counter(reject_category(r) for r in rejects)
    written = failed = 0
    seconds = 0.0
    pending: Counter[str] = Counter()
    blocked = False
    complete: list[str] = []
    no_samples: list[str] = []  # every row failed: stats and failure records, no tar
    for name in planned:
        tar, _ = shard_paths(out, name)
        if not shards.is_complete(tar):
            continue
        st = shards.read_stats(tar)
        complete.append(name)
        if not storage.exists(tar):
            no_samples.append(name)
        written += st["clips_written"]
        failed += st["failures"]
        seconds += st["audio_seconds"]
        by_cat.update(st["failures_by_category"])
        pending.update(st.get("pending_by_category", {}))
        blocked = blocked or bool(st.get("session_blocked"))
    missing = sorted(set(planned) - set(complete))
    if missing:
        raise RuntimeError(f"ingest finished but shards are incomplete: {', '.join(missing)}; run again to resume")
    return {
        "kind": "audio",
        "rows_in": rows_in,
        "rows_valid": rows_valid,
        "rows_rejected": len(rejects),
        "clips_written": written,
        "clips_failed": failed,
        "failures_by_category": dict(sorted(by_cat.items())),
        "rows_pending": sum(pending.values()),
        "pending_by_category": dict(sorted(pending.items())),
        "session": session_info(config, blocked=blocked),
        "audio_hours": round(seconds / 3600, 4),
        "sample_rate": config.sample_rate,
        "prefix": config.prefix,
        "shards": [n for n in planned if n not in no_samples],  # the tars a reader can open
        "shards_without_samples": no_samples,
        "config": {k: v for k, v in config.to_dict().items() if k not in ("cookies", "cookies_from_browser")}
        | {"cookies": bool(config.cookies), "cookies_from_browser": bool(config.cookies_from_browser)},
        "versions": _versions(),
    }


def session_info(config: IngestConfig, *, blocked: bool) -> dict[str, Any]:
    """Where and how the downloads ran: survival figures (geo-blocking above all) depend on it.
    The JS runtime is the driver's; workers resolve their own deno the same way."""
    import yt_dlp

    from cadenza.pipelines.ingest.fetch import deno_path

    deno = deno_path()
    return {
        "vantage": config.vantage,
        "yt_dlp": yt_dlp.version.__version__,
        "js_runtime": f"deno ({deno})" if deno else None,
        "pot_provider": config.pot_provider_url,
        "cookies": bool(config.cookies or config.cookies_from_browser),
        "max_videos_per_hour": config.session_limits().max_videos_per_hour,
        "blocked": blocked,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("cadenza", "apache-beam", "yt-dlp", "av", "soundfile", "soxr", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    try:
        import subprocess

        from cadenza.common.ffmpeg import ensure_ffmpeg

        first = subprocess.run([ensure_ffmpeg(), "-version"], capture_output=True, text=True, check=False).stdout
        out["ffmpeg"] = first.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" ", 1)[0]
    except Exception:  # noqa: BLE001 (version report only)
        out["ffmpeg"] = "unknown"
    return out
