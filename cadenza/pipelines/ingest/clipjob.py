"""One clip, end to end: fetch its window, verify, fall back, decode, clip, mono, resample, encode.

`process_clip` is what the pipeline runs for each row (many at once, in threads) and what the
benchmark's sequential baseline runs in a loop. It never raises for a bad source: it returns a
WebDataset sample, a FailureRecord that says which stage failed, why, and after how many tries, or
(for a failure that blames the session, not the clip: a bot check, a rate limit, the network) a
pending category and no record, so that the row is fetched again by the next run.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cadenza.formats.failures import SESSION, FailureRecord, side_of
from cadenza.musiccaps.schema import ClipRecord
from cadenza.pipelines.ingest import audio
from cadenza.pipelines.ingest.fetch import Fetcher, FetchError, FetchOptions, build_url, with_retries
from cadenza.pipelines.ingest.session_guard import SessionGuard, SessionLimits

RANGE_SLACK_S = (0.5, 1.0)  # a window download may be this much shorter / longer than asked (packet cuts)
MIN_COVERAGE_S = 0.5  # a clip may end this much before its window does (source slightly shorter)
# a window download failing like this says nothing about the source: try the whole file instead
RANGE_FALLBACK_CATEGORIES = {"fetch_error", "no_file", "decode_error", "no_range_support"}
STAGE_OF = {"decode_error": "decode", "non_finite_audio": "decode", "too_short": "clip"}


@dataclass(frozen=True)
class ClipJobConfig:
    """What a worker needs to turn a row into a sample; built by the driver from IngestConfig."""

    source_url_template: str
    sample_rate: int = 32000
    fetch: FetchOptions = field(default_factory=FetchOptions)
    download_ranges: bool = True
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    fetched_at: str | None = None  # fixed fetch time (SOURCE_DATE_EPOCH) for reproducible shards
    session: SessionLimits = field(default_factory=SessionLimits)


@dataclass
class ClipResult:
    key: str
    sample: dict[str, Any] | None = None
    failure: FailureRecord | None = None
    pending: str = ""  # session-side category that left the row unfetched (no failure record)
    attempts: int = 0
    bytes_fetched: int = 0
    fetch_mode: str = ""


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fetch_window(url: str, clip: ClipRecord, cfg: ClipJobConfig, fetcher: Fetcher) -> tuple[np.ndarray, int, int, str]:
    """Mono float32 audio of the clip's window at its source rate, its rate, bytes fetched, mode."""
    need = clip.end_s - clip.start_s
    if cfg.download_ranges:
        try:
            path = fetcher.download(url, window=(clip.start_s, clip.end_s))
            got, sr = audio.decode(path)
            dur = got.shape[1] / sr
            # a server without Range support can leave a near-empty or short file while yt-dlp is happy
            if need - RANGE_SLACK_S[0] <= dur <= need + RANGE_SLACK_S[1]:
                return _finite(audio.to_mono(got[:, : round(need * sr)])), sr, path.stat().st_size, "range"
        except FetchError as exc:
            if exc.transient or exc.category not in RANGE_FALLBACK_CATEGORIES:
                raise
        except audio.DecodeError:
            pass
    path = fetcher.download(url)
    size = path.stat().st_size
    try:
        got, sr = audio.decode(path, start_s=clip.start_s, duration_s=need)
    except audio.DecodeError as exc:
        raise FetchError("decode_error", str(exc)) from None
    covered = got.shape[1] / sr
    if covered < need - MIN_COVERAGE_S:
        raise FetchError(
            "too_short",
            f"source ends before the window: {covered:.2f} s of audio in [{clip.start_s:g}, {clip.end_s:g}] s",
        )
    return _finite(audio.to_mono(got)), sr, size, "whole"


def _finite(mono: np.ndarray) -> np.ndarray:
    """Float sources can hold NaN/inf, which int16 conversion would turn into arbitrary values."""
    bad = int(np.count_nonzero(~np.isfinite(mono)))
    if bad:
        raise FetchError("non_finite_audio", f"{bad} of {len(mono)} samples in the window are NaN or infinite")
    return mono


def process_clip(
    clip: ClipRecord,
    cfg: ClipJobConfig,
    *,
    label_names: list[str] | None = None,
    shard: str = "",
    guard: SessionGuard | None = None,
    rng: random.Random | None = None,
    fetcher: Fetcher | None = None,
) -> ClipResult:
    """Fetch and prepare one clip. Pass a long-lived `fetcher` when doing many (it keeps yt-dlp
    instances per thread); `guard` (shared by the threads) keeps the request budget and pauses or
    stops fetching while YouTube blocks the session."""
    key = clip.key
    try:
        url = build_url(cfg.source_url_template, clip.ytid)
    except FetchError as exc:
        return ClipResult(key, failure=_failure(clip, exc, 0, shard))
    own = fetcher is None
    fetcher = fetcher or Fetcher(cfg.fetch)

    def attempt() -> tuple[np.ndarray, int, int, str]:
        fetcher.prepare()
        epoch = guard.before_fetch() if guard is not None else 0
        try:
            got = _fetch_window(url, clip, cfg, fetcher)
        except FetchError as exc:
            if guard is not None:
                guard.after_fetch(epoch, exc)
            raise
        if guard is not None:
            guard.after_fetch(epoch, None)
        return got

    try:
        (mono, sr, nbytes, mode), attempts = with_retries(
            attempt,
            max_attempts=cfg.max_attempts,
            backoff_base_s=cfg.backoff_base_s,
            backoff_max_s=cfg.backoff_max_s,
            rng=rng,
        )
    except FetchError as exc:
        tries = getattr(exc, "attempts", 1)
        if side_of(exc.category) == SESSION:
            return ClipResult(key, pending=exc.category, attempts=tries)
        return ClipResult(key, failure=_failure(clip, exc, tries, shard, url))
    finally:
        if own:
            fetcher.close()
    fetched_at = cfg.fetched_at or _utc_now()
    pcm = audio.to_int16(audio.resample(mono, sr, cfg.sample_rate))
    quality = audio.quality_stats(pcm, cfg.sample_rate)
    meta = {
        **clip.to_dict(),
        "key": key,
        "audioset_label_names": list(label_names or []),
        "sample_rate": cfg.sample_rate,
        "num_samples": int(len(pcm)),
        "duration_s": round(len(pcm) / cfg.sample_rate, 6),
        "quality": quality.to_dict(),
        "source_url": url,
        "url": url,  # the name img2dataset-style tools look for
        "text": clip.caption,  # the name stable-audio-tools and most WebDataset loaders read the prompt from
        "source_sample_rate": sr,
        "fetch_mode": mode,
        "fetched_at": fetched_at,
    }
    sample = {
        "__key__": key,
        "flac": audio.encode_flac(pcm, cfg.sample_rate),
        "json": json.dumps(meta, sort_keys=True, ensure_ascii=False),
        "txt": clip.caption,
    }
    return ClipResult(key, sample=sample, attempts=attempts, bytes_fetched=nbytes, fetch_mode=mode)


def _failure(clip: ClipRecord, exc: FetchError, attempts: int, shard: str, url: str = "") -> FailureRecord:
    return FailureRecord(
        key=clip.key,
        stage=STAGE_OF.get(exc.category, "fetch"),
        category=exc.category,
        message=exc.message,
        attempts=attempts,
        ytid=clip.ytid,
        row=clip.row,
        shard=shard,
        extra={"source_url": url, "transient": exc.transient, "window": [clip.start_s, clip.end_s]},
    )


