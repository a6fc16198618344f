"""Decoding cadenza shards in the readers people already use, with soundfile instead of torchaudio/torchcodec.

The audio decoders of `webdataset` (`torch_audio`) and Hugging Face `datasets` (`Audio`) need torchaudio or
torchcodec, which often do not load beside the installed torch. The FLAC in the shards is plain 16-bit
PCM that libsndfile reads, so these decoders need nothing else:

    wds.WebDataset(urls).decode(wds_decoder)          # flac -> (float32 [channels, samples], rate)

Token members (`.npy`) keep their stored dtype (int16 codes, float16 text embeddings).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

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

