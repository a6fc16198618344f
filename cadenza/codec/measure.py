"""Every metric of one reconstruction, and the references every clip is measured against beside the codec.

References per clip: the original itself (the ceiling), Opus at the codec's bitrate (or Opus's lowest),
noise shaped to the clip's 64 mel-band energies at the codec's frame rate, and another clip: the previous
one in evaluation order (the first clip: the last), so the pairing is deterministic and only two clips
are held in memory at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadenza.codec.losses import METRIC_DIRECTION, log_mel_l1, reconstruction_metrics, si_snr, stft_distance
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


def batch_distances(audio: np.ndarray, estimates: list[np.ndarray], sample_rate: int) -> list[dict[str, float]]:
    """reconstruction_metrics for several reconstructions of one clip in one batch (the references: a batch
    of four costs about as much as two single calls)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].expand(len(estimates), -1)
    y = torch.from_numpy(np.stack([fit_length(e, len(audio)) for e in estimates]))
    with torch.no_grad():
        values = {"log_mel_l1": log_mel_l1(x, y, sample_rate), "stft_distance": stft_distance(x, y),
                  "si_snr": si_snr(x, y)}
    return [{m: float(v[i]) for m, v in values.items()} for i in range(len(estimates))]


class ReferenceSet:
    """Measures each clip's references as the clips stream past."""

    def __init__(self, sample_rate: int, hop: int, opus_kbps: float):
        self.sample_rate, self.hop, self.opus_kbps = sample_rate, hop, opus_kbps
        self._first: tuple[str, np.ndarray, ListenerReference] | None = None
        self._previous: tuple[str, np.ndarray, ListenerReference] | None = None

    def measure(self, key: str, audio: np.ndarray, listener: ListenerReference) -> dict[str, dict[str, Any]]:
        sr = self.sample_rate
        estimates = {"original": (audio, listener.pitch), "opus": (opus_roundtrip(audio, sr, self.opus_kbps), None),
                     "shaped_noise": (shaped_noise(audio, sr, self.hop, noise_seed(key)), None)}
        if self._previous is not None:
            estimates["another_clip"] = (self._previous[1], self._previous[2].pitch)
        distances = batch_distances(audio, [e for e, _ in estimates.values()], sr)
        out = {ref: {**listener_metrics(listener, e, sr, pitch), **d}
               for (ref, (e, pitch)), d in zip(estimates.items(), distances, strict=True)}
        if self._previous is not None:
            out["another_clip"]["with"] = self._previous[0]
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
