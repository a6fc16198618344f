"""Lining an estimate up with its original: the same length, and the frames loud enough to score."""

from __future__ import annotations

import numpy as np

SILENT_DB = 50.0  # frames this far below the clip's loudest frame are silence, not music


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """`audio` cut or zero-padded to n samples: a decode that comes up short is missing audio, i.e. silence."""
    audio = np.asarray(audio, dtype=np.float32)[:n]
    return np.pad(audio, (0, n - len(audio))) if len(audio) < n else audio


def active_frames(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Boolean per frame (librosa's centred framing): within SILENT_DB of the clip's loudest frame."""
    import librosa

    rms = librosa.feature.rms(y=audio, frame_length=n_fft, hop_length=hop)[0]
    return rms > rms.max() * 10 ** (-SILENT_DB / 20) if rms.max() > 0 else np.zeros(len(rms), dtype=bool)

