"""MusicGen's delay pattern: codebook k is shifted right by k steps, so one decoder step emits all K
codebooks while codebook k still sees codebooks < k of the same frame (they were emitted earlier)."""

from __future__ import annotations

import torch


def delay(codes: torch.Tensor, special: int) -> torch.Tensor:
    """[B, K, T] -> [B, K, T + K - 1]; the cells outside the shifted codes hold `special`."""
    b, k, t = codes.shape
    out = codes.new_full((b, k, t + k - 1), special)
    for i in range(k):
        out[:, i, i : i + t] = codes[:, i]
    return out


def undelay(delayed: torch.Tensor) -> torch.Tensor:
    """Inverse of `delay`: [B, K, S] -> [B, K, S - K + 1]."""
    b, k, s = delayed.shape
    t = s - k + 1
    return torch.stack([delayed[:, i, i : i + t] for i in range(k)], dim=1)


def delay_valid(lengths: torch.Tensor, num_codebooks: int, steps: int) -> torch.Tensor:
    """[B, K, steps] bool: True where the delayed cell holds a real code of a clip of `lengths` frames."""
    t = torch.arange(steps, device=lengths.device)[None, None, :]
    k = torch.arange(num_codebooks, device=lengths.device)[None, :, None]
    return (t >= k) & (t - k < lengths[:, None, None])
