"""Reading an ingest's audio shards: which shards are complete, a deterministic choice of clips across
them, and a sample's decoded audio. Used by tokenize and by the codec's training and evaluation.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
from typing import Any

import numpy as np

from cadenza.common.sources import SourceError
from cadenza.formats import shards

log = logging.getLogger(__name__)


def input_shards(audio_dir: str) -> list[tuple[int, str]]:
    """(index, path) of every complete audio shard, index taken from its name."""
    paths = shards.list_shards(shards.join(audio_dir, "shards"))
    if not paths:
        raise SourceError(f"{audio_dir}: no complete audio shards under {shards.join(audio_dir, 'shards')}")
    out = []
    for i, path in enumerate(paths):
        m = re.search(r"-(\d+)\.tar$", path)
        out.append((int(m.group(1)) if m else i, path))
    if len({i for i, _ in out}) != len(out):
        raise SourceError(f"{audio_dir}: shard names do not give distinct indices")
    return out


def decode_audio(sample: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The sample's flac as mono float32 and its rate."""
    import soundfile as sf

    if "flac" not in sample:
        raise KeyError("sample has no flac member")
    audio, sr = sf.read(io.BytesIO(sample["flac"]), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr)


def select_clips(paths: list[str], count: int) -> list[tuple[str, str]]:
    """`count` (shard, key) pairs spread over all shards: the keys with the smallest hashes (deterministic)."""
    import hashlib

    keys: list[tuple[str, str, str]] = []
    for path in paths:
        seen: set[str] = set()
        try:
            seen.update(s["__key__"] for s in shards.iter_tar_samples(path))
        except (ValueError, tarfile.TarError, OSError) as exc:
            # the tokenize pass records the broken shard; fitting goes on with what could be read
            log.warning("k-means/calibration clips: rest of shard unreadable: %s", exc)
        keys += [(hashlib.sha256(k.encode()).hexdigest(), path, k) for k in seen]
    return [(path, key) for _, path, key in sorted(keys)[:count]]


def load_clips(selection: list[tuple[str, str]]):
    """Yield (key, audio, sr) for the selected clips, shard by shard; unreadable clips are skipped."""
    by_shard: dict[str, set[str]] = {}
    for path, key in selection:
        by_shard.setdefault(path, set()).add(key)
    for path in sorted(by_shard):
        try:
            for sample in shards.iter_tar_samples(path):
                if sample["__key__"] not in by_shard[path]:
                    continue
                try:
                    audio, sr = decode_audio(sample)
                except Exception:  # noqa: BLE001,S112 (a bad clip is reported by the tokenize pass, not here)
                    continue
                yield sample["__key__"], audio, sr
        except (ValueError, tarfile.TarError, OSError) as exc:  # what came before the break is kept
            log.warning("k-means/calibration clips: rest of shard unreadable: %s", exc)
