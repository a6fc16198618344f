"""Deterministic synthesis of short pieces in clearly different musical styles (numpy only).

The styles (cadenza.demo.style_renderers) differ in timbre, rhythm, tempo and tuning, so that the
tokenizers, the model and the audit all have something real to tell apart. The same (style, seed,
duration, sample rate) always gives the same samples on a given machine: every random choice comes from
a numpy Generator seeded here.
"""

from __future__ import annotations

import numpy as np

from cadenza.demo.style_renderers import RENDERERS
from cadenza.demo.synth_blocks import Array, envelope

DEFAULT_SR = 44100  # like YouTube's AAC audio; ingest resamples to its own rate


def render(style: str, seed: int, duration_s: float = 20.0, sr: int = DEFAULT_SR, peak_dbfs: float = -1.0) -> Array:
    """Render `duration_s` of `style` as float32 mono in [-1, 1], peak-normalised to `peak_dbfs`."""
    try:
        fn = RENDERERS[style]
    except KeyError:
        raise ValueError(f"unknown demo style {style!r}; known: {', '.join(RENDERERS)}") from None
    rng = np.random.default_rng([seed, list(RENDERERS).index(style)])
    x = fn(rng, duration_s, sr)
    fade = envelope(len(x), sr, 0.01, 0.05)
    x = x * fade
    x *= 10 ** (peak_dbfs / 20) / (np.abs(x).max() + 1e-12)
    return x.astype(np.float32)


def to_pcm16(x: Array) -> Array:
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
