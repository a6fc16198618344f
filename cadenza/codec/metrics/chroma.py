"""Pitch content kept: 12-bin chroma of the original against the reconstruction's, frame by frame.

Each frame's chroma has its mean over the 12 pitch classes removed before the cosine: every chroma
vector is non-negative, so a plain cosine is high for any two sounds (noise shaped like a melody's
spectrum scores ~0.8 against it); centred, a flat chroma (noise, no notes) scores 0, another piece ~0,
and only shared pitch classes count. Frames where the original is near silent are left out; a
reconstruction frame with no pitch content scores 0. Both use the same (equal-tempered, A440) bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cadenza.codec.metrics.frames import active_frames, fit_length

N_FFT = 4096  # ~6 Hz bins at 24 kHz: the bass notes' pitch classes are still apart
HOP = 1024



def _centred_chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    c = librosa.feature.chroma_stft(y=audio, sr=sample_rate, n_fft=N_FFT, hop_length=HOP,
                                    tuning=0.0, norm=None)  # estimating the tuning costs more than the rest
    return c - c.mean(axis=0, keepdims=True)


@dataclass(frozen=True)
class ChromaReference:
    chroma: np.ndarray  # [12, frames] centred
    keep: np.ndarray  # the frames that count


def chroma_reference(audio: np.ndarray, sample_rate: int) -> ChromaReference:
    c = _centred_chroma(audio, sample_rate)
    return ChromaReference(c, active_frames(audio, N_FFT, HOP)[: c.shape[1]])


def chroma_similarity_to(reference: ChromaReference, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean centred-chroma cosine over the reference's frames that count (`estimate` as long as the original)."""
    if not reference.keep.any():
        return float("nan")
    a = reference.chroma[:, reference.keep]
    b = _centred_chroma(estimate, sample_rate)[:, reference.keep]
    norms = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    cos = np.where(norms > 1e-12, (a * b).sum(axis=0) / np.maximum(norms, 1e-12), 0.0)
    return float(cos.mean())


def chroma_similarity(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """1 for the original itself, ~0 for noise or an unrelated piece."""
    return chroma_similarity_to(chroma_reference(reference, sample_rate), fit_length(estimate, len(reference)),
                                sample_rate)
