"""Melody kept: does the reconstruction follow the original's f0, on clips that have one clear pitch.

pYIN (librosa.pyin) tracks f0 on the first PITCH_SECONDS of a clip, resampled to PITCH_RATE (pYIN is
slow: ~0.3 s per clip so). A clip has a clear pitch when at least CLEAR_SHARE of its frames are voiced
with probability above VOICED_PROB (a solo line; chords and drums are not); other clips are not
applicable, and counted so. Agreement: the share of the original's voiced frames where the
reconstruction is voiced within TOLERANCE_CENTS of the original's f0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PITCH_SECONDS = 3.0
PITCH_RATE = 8000
FMIN_HZ, FMAX_HZ = 65.0, 1050.0  # C2 to C6
FRAME, HOP = 512, 128
RESOLUTION = 0.25  # pitch bins of 25 cents: fine for a 50-cent tolerance, 6x cheaper than pYIN's default
VOICED_PROB = 0.5
CLEAR_SHARE = 0.5
TOLERANCE_CENTS = 50.0


@dataclass(frozen=True)
class PitchTrack:
    f0: np.ndarray  # Hz per frame, nan where unvoiced
    voiced: np.ndarray  # bool per frame: voiced with probability above VOICED_PROB

    @property
    def clear(self) -> bool:
        return bool(len(self.voiced)) and float(self.voiced.mean()) >= CLEAR_SHARE


def pitch_track(audio: np.ndarray, sample_rate: int) -> PitchTrack:
    import librosa

    y = librosa.resample(audio[: int(PITCH_SECONDS * sample_rate)], orig_sr=sample_rate, target_sr=PITCH_RATE)
    if len(y) < FRAME:
        return PitchTrack(np.full(0, np.nan), np.zeros(0, dtype=bool))
    f0, _, prob = librosa.pyin(y, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=PITCH_RATE, frame_length=FRAME, hop_length=HOP,
                               resolution=RESOLUTION)
    voiced = (prob > VOICED_PROB) & np.isfinite(f0)
    return PitchTrack(np.where(voiced, f0, np.nan), voiced)


def f0_agreement(reference: PitchTrack, estimate: PitchTrack) -> float | None:
    """Share of the reference's voiced frames the estimate matches within TOLERANCE_CENTS; None when the
    reference has no clear pitch (not applicable)."""
    if not reference.clear:
        return None
    n = min(len(reference.f0), len(estimate.f0))
    ref, est = reference.f0[:n][reference.voiced[:n]], estimate.f0[:n][reference.voiced[:n]]
    with np.errstate(invalid="ignore"):
        cents = np.abs(1200 * np.log2(est / ref))
    return float(np.mean(np.nan_to_num(cents, nan=np.inf) <= TOLERANCE_CENTS))
