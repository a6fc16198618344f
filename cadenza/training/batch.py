"""Token samples (`cadenza.formats.token_samples.decode_sample`) padded into one torch batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadenza.formats.token_spec import TokenSpec


def _pad_stack(arrays: list[np.ndarray], length: int) -> np.ndarray:
    """Stack along a new first axis, zero-padding the last axis to `length` (no padding: one np.stack)."""
    if all(a.shape[-1] == length for a in arrays):
        return np.stack(arrays)
    out = np.zeros((len(arrays), *arrays[0].shape[:-1], length), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, ..., : a.shape[-1]] = a
    return out


def collate(samples: list[dict[str, Any]], spec: TokenSpec) -> dict[str, Any]:
    """Pad variable lengths; masks are True on real frames. Tokens stay int16 as in the shards (a quarter
    of the bytes to move to the device); `nll.batch_to` widens them there."""
    sem_len = torch.tensor([len(s["semantic"]) for s in samples])
    ac_len = torch.tensor([s["acoustic"].shape[1] for s in samples])
    ls, la = int(sem_len.max()), int(ac_len.max())
    texts = [s["text"] if s["text"] is not None else np.zeros(spec.text_dim, np.float16) for s in samples]
    return {
        "semantic": torch.from_numpy(_pad_stack([s["semantic"] for s in samples], ls)),
        "semantic_mask": torch.arange(ls)[None, :] < sem_len[:, None],
        "acoustic": torch.from_numpy(_pad_stack([s["acoustic"] for s in samples], la)),
        "acoustic_mask": torch.arange(la)[None, :] < ac_len[:, None],
        "text": torch.from_numpy(np.stack(texts).astype(np.float32)),
        "has_text": torch.tensor([s["text"] is not None for s in samples]),
        "keys": [s["key"] for s in samples],
        "ytids": [s["ytid"] for s in samples],
        "urls": [s["url"] for s in samples],
    }
