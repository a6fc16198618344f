"""The building blocks the demo styles are made of: a mix buffer, additive partials, simple oscillators,
envelopes, frequency-domain band limiting and a plain reverb (numpy only).

Instruments are additive: a note is a sum of partials with their own amplitude and decay, rendered once
per pitch and cached within a piece (NoteCache), which keeps a 20 s piece well under a second to render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray


class Mix:
    """A mono buffer that notes are added into at given times (anything past the end is dropped)."""

    def __init__(self, duration_s: float, sr: int):
        self.sr = sr
        self.buf = np.zeros(int(round(duration_s * sr)), dtype=np.float64)

    def add(self, t_s: float, x: Array, gain: float = 1.0) -> None:
        i = int(round(t_s * self.sr))
        if i >= len(self.buf) or i + len(x) <= 0:
            return
        x = x[max(0, -i):]
        i = max(0, i)
        n = min(len(x), len(self.buf) - i)
        self.buf[i : i + n] += gain * x[:n]


def partials(
    freqs: Array | list[float], amps: Array | list[float], decays_s: Array | list[float], dur_s: float, sr: int,
    attack_s: float = 0.002, phase_rng: np.random.Generator | None = None,
) -> Array:
    """Sum of exponentially decaying sinusoids (partials above Nyquist are dropped)."""
    f = np.asarray(freqs, dtype=np.float64)
    a = np.asarray(amps, dtype=np.float64)
    d = np.asarray(decays_s, dtype=np.float64)
    keep = f < 0.45 * sr
    f, a, d = f[keep], a[keep], d[keep]
    n = int(dur_s * sr)
    t = np.arange(n) / sr
    phases = phase_rng.uniform(0, 2 * np.pi, len(f)) if phase_rng is not None else np.zeros(len(f))
    out = np.zeros(n)
    for fi, ai, di, ph in zip(f, a, d, phases, strict=True):
        out += ai * np.exp(-t / di) * np.sin(2 * np.pi * fi * t + ph)
    return out * np.minimum(1.0, t / attack_s) if attack_s > 0 else out


def harmonic_tone(f0: Array | float, amps: Array, dur_s: float, sr: int) -> Array:
    """Sustained tone with harmonics k*f0(t); f0 may vary over time (vibrato, glides)."""
    n = int(dur_s * sr)
    f0 = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros(n)
    for k, a in enumerate(amps, start=1):
        if a != 0 and k * f0.max() < 0.45 * sr:
            out += a * np.sin(k * phase)
    return out


def wavetable(phase: Array, amps: Array, size: int = 4096) -> Array:
    """One period of a harmonic waveform looked up by phase (in cycles): cheap sustained tones."""
    grid = 2 * np.pi * np.arange(size) / size
    table = sum(a * np.sin(k * grid) for k, a in enumerate(amps, start=1) if a)
    return np.asarray(table)[(np.asarray(phase) * size).astype(np.int64) % size]


def fft_size(n: int) -> int:
    return 1 << int(np.ceil(np.log2(max(n, 2))))


def envelope(n: int, sr: int, attack_s: float, release_s: float) -> Array:
    t = np.arange(n) / sr
    rel = np.clip((n / sr - t) / max(release_s, 1e-4), 0.0, 1.0)
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * rel


def band(x: Array, sr: int, lo: float | None = None, hi: float | None = None, order: int = 2) -> Array:
    """Butterworth-shaped band limiting applied in the frequency domain (zero phase)."""
    size = fft_size(len(x))  # pocketfft is slow on lengths with large prime factors
    spec = np.fft.rfft(x, size)
    f = np.fft.rfftfreq(size, 1 / sr)
    gain = np.ones_like(f)
    if hi is not None:
        gain /= np.sqrt(1 + (f / hi) ** (2 * order))
    if lo is not None:
        gain /= np.sqrt(1 + (lo / np.maximum(f, 1e-3)) ** (2 * order))
    return np.fft.irfft(spec * gain, n=size)[: len(x)]


def noise_burst(rng: np.random.Generator, dur_s: float, decay_s: float, sr: int,
                lo: float | None = None, hi: float | None = None) -> Array:
    n = int(dur_s * sr)
    x = band(rng.standard_normal(n), sr, lo, hi)
    return x / (np.abs(x).max() + 1e-9) * np.exp(-np.arange(n) / sr / decay_s)


def reverb(x: Array, sr: int, rng: np.random.Generator, rt60_s: float = 1.5, wet: float = 0.25) -> Array:
    """Convolution with exponentially decaying noise: a plain room, enough to sound less dry."""
    n_ir = int(rt60_s * sr)
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * np.arange(n_ir) / n_ir)
    ir = band(ir, sr, 200, 6000) / np.sqrt(n_ir)
    size = 1 << int(np.ceil(np.log2(len(x) + n_ir)))
    wet_sig = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    return (1 - wet) * x + wet * wet_sig * (np.abs(x).max() / (np.abs(wet_sig).max() + 1e-9))


def pulse(phase: Array, duty: float) -> Array:
    return np.where((phase % 1.0) < duty, 1.0, -1.0)


def saw(phase: Array) -> Array:
    return 2.0 * (phase % 1.0) - 1.0


def midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


class NoteCache:
    """Renders each distinct note once per piece; returns copies callers may scale freely."""

    def __init__(self) -> None:
        self._d: dict[tuple[Any, ...], Array] = {}

    def get(self, make: Callable[..., Array], *args: Any) -> Array:
        key = (make.__name__, *args)
        if key not in self._d:
            self._d[key] = make(*args)
        return self._d[key]
