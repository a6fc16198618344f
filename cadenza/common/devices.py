"""Which torch device a command runs on: `auto` (CUDA when present, else CPU), `cpu` or `cuda`.

Shared by tokenize and train so that both resolve `auto` the same way and refuse `cuda` on a machine
without one before any work starts.
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailable(ValueError):
    """`cuda` was asked for where torch sees no CUDA device."""


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(name: str) -> str:
    """"cpu" or "cuda" for `name` in DEVICES; raises DeviceUnavailable for cuda without a CUDA device."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if name == "cuda":
        raise DeviceUnavailable("cuda asked for, but torch sees no CUDA device here (use cpu or auto)")
    return "cpu"
