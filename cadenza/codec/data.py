"""Audio for codec training: clips from audio shards, resampled to the codec's rate, held in memory,
and random segments drawn from them by a generator seeded with (seed, step), so a resumed run draws the
same batches as an uninterrupted one without saving any loader state."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from cadenza.common.sources import SourceError
from cadenza.formats import shards, storage
from cadenza.tokenizers.base import fingerprint_parts


@dataclass
class ClipSet:
    keys: list[str]
    audio: list[np.ndarray]  # mono float32 at sample_rate
    sample_rate: int

    @property
    def seconds(self) -> float:
        return sum(len(a) for a in self.audio) / self.sample_rate


def audio_shard_paths(audio_dir: str) -> list[str]:
    """The complete audio shards of an ingest output dir, in index order."""
    from cadenza.formats.audio import input_shards

    return [path for _, path in sorted(input_shards(audio_dir))]


def split_paths(shards_dir: str, val_dir: str | None, holdout_shards: int) -> tuple[list[str], list[str]]:
    """(train, validation) shard paths: VAL_DIR's shards when given, else the last `holdout_shards` of
    SHARDS_DIR (the same shards `split_tokens` holds out of the token dir made from them)."""
    paths = audio_shard_paths(shards_dir)
    if val_dir:
        return paths, audio_shard_paths(val_dir)
    if holdout_shards <= 0:
        return paths, []
    if holdout_shards >= len(paths):
        raise SourceError(f"{shards_dir}: {len(paths)} audio shard(s), cannot hold out {holdout_shards} for "
                          "validation and train on the rest; pass --val-shards DIR or --holdout-shards 0")
    return paths[:-holdout_shards], paths[-holdout_shards:]


def shards_fingerprint(paths: list[str]) -> str:
    """Names, sizes and completion markers of the shards a codec was trained on."""
    parts: list = []
    for path in paths:
        fs, local = storage.filesystem(path)
        stats = shards.stats_path(path)
        marker = storage.read_json(stats) if storage.exists(stats) else None
        parts += [os.path.basename(path), int(fs.size(local)), marker]
    return fingerprint_parts("audio-shards", *parts)


def load_clip_set(paths: list[str], sample_rate: int, max_clips: int | None = None) -> ClipSet:
    """Up to `max_clips` clips spread over `paths` (the same clips every time), resampled to `sample_rate`."""
    import librosa

    from cadenza.formats.audio import load_clips, select_clips

    selection = select_clips(paths, max_clips if max_clips else 1 << 62)
    keys, audio = [], []
    for key, clip, sr in load_clips(selection):
        if sr != sample_rate:
            clip = librosa.resample(clip, orig_sr=sr, target_sr=sample_rate)
        if clip.size and np.isfinite(clip).all():
            keys.append(key)
            audio.append(np.ascontiguousarray(clip, dtype=np.float32))
    return ClipSet(keys, audio, sample_rate)


def segment_batch(clips: ClipSet, batch_size: int, segment: int, seed: int, step: int) -> np.ndarray:
    """[batch_size, segment] float32: clips drawn in proportion to their length, random offsets, zero-padded."""
    rng = np.random.default_rng([seed, step])
    lengths = np.array([len(a) for a in clips.audio], dtype=np.float64)
    picks = rng.choice(len(lengths), size=batch_size, p=lengths / lengths.sum())
    out = np.zeros((batch_size, segment), dtype=np.float32)
    for row, i in enumerate(picks):
        clip = clips.audio[i]
        start = int(rng.integers(0, max(1, len(clip) - segment + 1)))
        piece = clip[start:start + segment]
        out[row, :len(piece)] = piece
    return out
