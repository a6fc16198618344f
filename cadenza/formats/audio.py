"""Audio shards as the next stage reads them: which shards are complete, a deterministic choice of clips
across them, a sample's decoded audio (used by tokenize and by the codec's training and evaluation), and
decoders for the readers people already use, with soundfile instead of torchaudio/torchcodec.

The audio decoders of `webdataset` (`torch_audio`) and Hugging Face `datasets` (`Audio`) need torchaudio or
torchcodec, which often do not load beside the installed torch. The FLAC in the shards is plain 16-bit
PCM that libsndfile reads, so these decoders need nothing else:

    wds.WebDataset(urls).decode(wds_decoder)          # flac -> (float32 [channels, samples], rate)

Token members (`.npy`) keep their stored dtype (int16 codes, float16 text embeddings).
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
from typing import Any

import numpy as np

from cadenza.common.sources import SourceError
from cadenza.formats import shards, storage

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = ("flac", "wav", "ogg")


def decode_audio_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """float32 audio shaped [channels, samples] (torchaudio's layout) and its sample rate."""
    import soundfile as sf

    audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), int(sr)


def wds_decoder(key: str, data: bytes) -> Any:
    """A `webdataset` decode handler: audio members -> (float32 [channels, samples], rate), `.npy` -> the
    array in its stored dtype. Returns None for other members, so webdataset's own handlers take them."""
    ext = key.rsplit(".", 1)[-1].lower()
    if ext in AUDIO_EXTENSIONS:
        return decode_audio_bytes(data)
    if ext == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    return None


def input_shards(audio_dir: str) -> list[tuple[int, str]]:
    """(index, path) of every complete audio shard, index taken from its name."""
    paths = shards.list_shards(storage.join(audio_dir, "shards"))
    if not paths:
        raise SourceError(f"{audio_dir}: no complete audio shards under {storage.join(audio_dir, 'shards')}")
    out = []
    for i, path in enumerate(paths):
        m = re.search(r"-(\d+)\.tar$", path)
        out.append((int(m.group(1)) if m else i, path))
    if len({i for i, _ in out}) != len(out):
        raise SourceError(f"{audio_dir}: shard names do not give distinct indices")
    return out


def decode_audio(sample: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The sample's flac as mono float32 and its rate."""
    if "flac" not in sample:
        raise KeyError("sample has no flac member")
    audio, sr = decode_audio_bytes(sample["flac"])
    return audio.mean(axis=0), sr


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


def load_clips(selection: list[tuple[str, str]], skipped: dict[str, str] | None = None):
    """Yield (key, audio, sr) for the selected clips, shard by shard. A clip that cannot be read is not
    yielded; given `skipped`, its key -> why is recorded there once the generator is exhausted: a clip that
    does not decode, the rest of a shard that cannot be read, a selected key its shard does not hold."""
    skipped = {} if skipped is None else skipped
    by_shard: dict[str, set[str]] = {}
    for path, key in selection:
        by_shard.setdefault(path, set()).add(key)
    for path in sorted(by_shard):
        pending = set(by_shard[path])
        try:
            for sample in shards.iter_tar_samples(path):
                key = sample["__key__"]
                if key not in pending:
                    continue
                pending.discard(key)
                try:
                    audio, sr = decode_audio(sample)
                except Exception as exc:  # noqa: BLE001 (any bad clip is the caller's to count, not to stop on)
                    skipped[key] = f"cannot decode: {type(exc).__name__}: {exc}"
                    continue
                yield key, audio, sr
        except (ValueError, tarfile.TarError, OSError) as exc:  # what came before the break is kept
            log.warning("audio clips: rest of shard unreadable: %s", exc)
            skipped.update({k: f"rest of shard unreadable: {exc}" for k in pending})
            continue
        skipped.update({k: "not in its shard" for k in pending})
