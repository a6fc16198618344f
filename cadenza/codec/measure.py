"""Every metric of one reconstruction, and the references every clip is measured against beside the codec.

References per clip: the original itself (the ceiling), Opus at the codec's bitrate (or Opus's lowest),
noise shaped to the clip's 64 mel-band energies at the codec's frame rate, and another clip: the previous
one in evaluation order (the first clip: the last), so the pairing is deterministic and only two clips
are held in memory at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cadenza.codec.losses import METRIC_DIRECTION, reconstruction_metrics
from cadenza.codec.metrics import LISTENER_DIRECTION, ListenerReference, fit_length, listener_metrics
from cadenza.codec.metrics.pitch import PitchTrack
from cadenza.codec.references import noise_seed, opus_roundtrip, shaped_noise

METRICS = (*LISTENER_DIRECTION, *METRIC_DIRECTION)
REFERENCES = ("original", "opus", "shaped_noise", "another_clip")


def clip_metrics(listener: ListenerReference, audio: np.ndarray, estimate: np.ndarray, sample_rate: int,
                 estimate_pitch: PitchTrack | None = None) -> dict[str, float | None]:
    """The distances (cadenza.codec.losses) and the listener metrics of one reconstruction of `audio`."""
    return {**listener_metrics(listener, estimate, sample_rate, estimate_pitch),
            **reconstruction_metrics(audio, fit_length(estimate, len(audio)), sample_rate)}


class ReferenceSet:
    """Measures each clip's references as the clips stream past."""

    def __init__(self, sample_rate: int, hop: int, opus_kbps: float):
        self.sample_rate, self.hop, self.opus_kbps = sample_rate, hop, opus_kbps
        self._first: tuple[str, np.ndarray, ListenerReference] | None = None
        self._previous: tuple[str, np.ndarray, ListenerReference] | None = None

    def measure(self, key: str, audio: np.ndarray, listener: ListenerReference) -> dict[str, dict[str, Any]]:
        sr = self.sample_rate
        out = {"original": clip_metrics(listener, audio, audio, sr, listener.pitch),
               "opus": clip_metrics(listener, audio, opus_roundtrip(audio, sr, self.opus_kbps), sr),
               "shaped_noise": clip_metrics(listener, audio, shaped_noise(audio, sr, self.hop, noise_seed(key)), sr)}
        if self._previous is not None:
            out["another_clip"] = self._against(self._previous, audio, listener)
        self._first = self._first or (key, audio, listener)
        self._previous = (key, audio, listener)
        return out

    def close_the_ring(self, rows: list[dict[str, Any]]) -> None:
        """The first clip's another-clip reference: the last clip (when there are two clips or more)."""
        if self._first is not None and len(rows) > 1:
            _, audio, listener = self._first
            rows[0]["references"]["another_clip"] = self._against(self._previous, audio, listener)

    def _against(self, other: tuple[str, np.ndarray, ListenerReference], audio: np.ndarray,
                 listener: ListenerReference) -> dict[str, Any]:
        other_key, other_audio, other_listener = other
        return {**clip_metrics(listener, audio, other_audio, self.sample_rate, other_listener.pitch),
                "with": other_key}
