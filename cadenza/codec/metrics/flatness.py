"""Noise added: the reconstruction's spectral flatness over the original's.

Spectral flatness (geometric over arithmetic mean of a frame's power spectrum) is near 1 for noise and
near 0 for notes. Per clip: the ratio of the two geometric means over the original's non-silent frames,
measured below FMAX_HZ, where the notes are (a codec that drops the top octaves would otherwise score
as noise-free). Above 1: the reconstruction is noisier than the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cadenza.codec.metrics.frames import active_frames, fit_length

N_FFT = 2048
HOP = 512
FMAX_HZ = 5000.0
POWER_FLOOR = 1e-10


def log_frame_flatness(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """log spectral flatness per frame, from the bins below FMAX_HZ."""
    import librosa

    power = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=HOP)) ** 2
    power = np.maximum(power[librosa.fft_frequencies(sr=sample_rate, n_fft=N_FFT) <= FMAX_HZ], POWER_FLOOR)
    return np.log(power).mean(axis=0) - np.log(power.mean(axis=0))


@dataclass(frozen=True)
class FlatnessReference:
    log_flatness: np.ndarray  # per frame
    keep: np.ndarray


def flatness_reference(audio: np.ndarray, sample_rate: int) -> FlatnessReference:
    log_flat = log_frame_flatness(audio, sample_rate)
    return FlatnessReference(log_flat, active_frames(audio, N_FFT, HOP)[: len(log_flat)])


def flatness_ratio_to(reference: FlatnessReference, estimate: np.ndarray, sample_rate: int) -> float:
    if not reference.keep.any():
        return float("nan")
    log_est = log_frame_flatness(estimate, sample_rate)[reference.keep]
    return float(np.exp(log_est.mean() - reference.log_flatness[reference.keep].mean()))


def flatness_ratio(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """1 for the original itself; noise scores far above 1."""
    return flatness_ratio_to(flatness_reference(reference, sample_rate), fit_length(estimate, len(reference)),
                             sample_rate)
