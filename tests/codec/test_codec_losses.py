"""The frame-locked loss: it sees a pattern that repeats every hop in phase with the frame grid (the decoder's
frame-rate buzz), and hardly anything that is not locked to that grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadenza.codec import losses
from cadenza.codec.trainer import frame_locked_rms_ratio, pairwise_correlations

HOP = 320
SR = 24_000


def _music_like(seed: int, seconds: float = 2.0) -> torch.Tensor:
    """Two tones off the 75 Hz grid plus noise: nothing in it repeats every 320 samples (other seeds, other
    tones)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f1, f2 = 441.3 + 53.1 * seed, 1234.5 + 91.7 * seed
    x = 0.3 * np.sin(2 * np.pi * f1 * t) + 0.2 * np.sin(2 * np.pi * f2 * t) + 0.05 * rng.standard_normal(t.size)
    return torch.from_numpy(x.astype(np.float32))[None]


def test_frame_locked_pattern_is_penalised_and_a_non_locked_error_is_not():
    x = _music_like(0)
    rng = np.random.default_rng(1)
    pattern = torch.from_numpy(rng.standard_normal(HOP).astype(np.float32))
    level = float(x.abs().mean())
    buzz = 0.5 * level * pattern / pattern.abs().mean()  # mean |buzz| is half the clip's mean |x|
    locked = x + buzz.repeat(x.shape[-1] // HOP)[None]
    # an error of the same size that is not locked to the grid: the same pattern shifted by a growing offset
    # per frame (a buzz at 77 Hz instead of 75), and white noise
    drift = torch.cat([torch.roll(buzz, 7 * f) for f in range(x.shape[-1] // HOP)])[None]
    noise = torch.from_numpy(rng.standard_normal(x.shape[-1]).astype(np.float32))[None] * float(buzz.abs().mean())
    assert float(losses.frame_locked_l1(x, x, HOP)[0]) == 0.0
    on_grid = float(losses.frame_locked_l1(x, locked, HOP)[0])
    assert on_grid == pytest.approx(0.5, rel=0.05)
    for off_grid in (x + drift, x + noise * 1.25):
        assert float(losses.frame_locked_l1(x, off_grid, HOP)[0]) < 0.2 * on_grid
    # the same pattern in the target (audio that really repeats at the frame rate) is no error
    assert float(losses.frame_locked_l1(locked, locked, HOP)[0]) == 0.0


def test_frame_locked_loss_pulls_the_decode_toward_the_target_pattern():
    x = _music_like(2)
    buzz = torch.zeros(HOP, requires_grad=True)
    with torch.no_grad():
        buzz += 0.1 * torch.randn(HOP, generator=torch.Generator().manual_seed(3))
    y = x + buzz.repeat(x.shape[-1] // HOP)[None]
    losses.frame_locked_l1(x, y, HOP).sum().backward()
    # a gradient step shrinks the buzz: the gradient has the buzz's sign everywhere
    assert torch.equal(torch.sign(buzz.grad), torch.sign(buzz.detach()))


def test_validation_measures_shared_buzz():
    """The held-out figures the trainer records: a shared frame-locked component raises both the pairwise
    decode correlation and the frame-locked share; independent clips show neither."""
    a, b, c = (_music_like(seed)[0].numpy() for seed in (4, 5, 6))
    assert np.abs(pairwise_correlations([a, b, c])).max() < 0.1
    assert frame_locked_rms_ratio(a, HOP) < 0.1
    buzz = np.tile(np.random.default_rng(6).standard_normal(HOP).astype(np.float32) * a.std(), a.size // HOP)
    assert pairwise_correlations([a + buzz, b + buzz])[0] > 0.4
    assert frame_locked_rms_ratio(a + buzz, HOP) > 0.6
