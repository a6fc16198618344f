"""How a batched EnCodec encode is laid out so that a clip's codes depend on the clip alone.

Batching changes float rounding (kernel blocking follows the tensor shapes), and so a small share of
codes; what it must not do is make a clip's codes depend on which other clips shared its batch, or
codes would change with the runner's bundles from run to run. So every batch has the same shape for a
given clip: each clip is zero-padded to its own bucket (its length rounded up to whole `PAD_SECONDS`
steps, a multiple of the codec hop), only clips of one bucket share a batch, and a batch always has
`batch` rows (empty rows are silence). Rows never mix in the encoder or the quantizer, so a clip's codes
are a function of the clip, the variant and the weights; its codes are cropped back to its own
ceil(length / hop) frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PAD_SECONDS = 1.0
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class EncodeVariant:
    """The numerics of an encode: 1 clip at a time in fp32 is the reference every variant is measured against."""

    batch: int = 1
    precision: str = "fp32"  # bf16: encoder under bf16 autocast, quantizer distances in fp32

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"encode batch must be >= 1, got {self.batch}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"encode precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def is_reference(self) -> bool:
        return self.batch == 1 and self.precision == "fp32"

    def to_dict(self) -> dict[str, object]:
        return {"batch": self.batch, "precision": self.precision, "pad_seconds": PAD_SECONDS if self.batch > 1 else 0}

    @classmethod
    def from_describe(cls, desc: dict) -> EncodeVariant:
        """The variant a manifest's acoustic describe() names (none: the reference)."""
        enc = desc.get("encode") or {}
        return cls(batch=int(enc.get("batch", 1)), precision=str(enc.get("precision", "fp32")))


def pad_step(sample_rate: int, hop: int) -> int:
    """Bucket step in samples: PAD_SECONDS rounded to whole codec frames."""
    return hop * max(1, round(PAD_SECONDS * sample_rate / hop))


def batch_plan(lengths: list[int], batch: int, step: int) -> list[tuple[list[int], int]]:
    """(clip indices, padded length) per batch: clips grouped by bucket in input order, `batch` at most each."""
    by_bucket: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_bucket.setdefault(math.ceil(n / step) * step, []).append(i)
    return [(idxs[s:s + batch], length) for length, idxs in by_bucket.items() for s in range(0, len(idxs), batch)]


def padded_batch(clips: list[np.ndarray], rows: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """[rows, 1, length] float32 audio, zero-padded, and its padding mask (True where audio is real)."""
    x = np.zeros((rows, 1, length), dtype=np.float32)
    mask = np.zeros((rows, 1, length), dtype=bool)
    for row, clip in enumerate(clips):
        x[row, 0, :clip.size] = clip
        mask[row, 0, :clip.size] = True
    return x, mask
