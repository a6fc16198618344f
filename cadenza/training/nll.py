"""Held-out negative log-likelihood per stage and per codebook (nats per token)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def batch_to(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move a collated batch to `device`; int16 token tensors become int64 there."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            v = v.long() if v.dtype == torch.int16 else v
        out[k] = v
    return out


@torch.no_grad()
def heldout_nll(model, batches: Iterable[dict[str, Any]], device="cpu", max_batches: int | None = None) -> dict:
    """Summary NLL/perplexity per stage and codebook, plus per-clip NLL (key -> stage -> nats/token)."""
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, torch.Tensor] = {}
    per_clip: dict[str, dict[str, Any]] = {}
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        out = model(batch_to(batch, device), cfg_drop=False)
        for stage in ("semantic", "acoustic"):
            s, n = out[f"nll_{stage}"].double().cpu(), out[f"count_{stage}"].double().cpu()  # [B, K]
            sums[stage] = sums.get(stage, 0) + s.sum(0)
            counts[stage] = counts.get(stage, 0) + n.sum(0)
            for j, key in enumerate(batch["keys"]):
                clip = per_clip.setdefault(key, {"ytid": batch["ytids"][j]})
                clip[stage] = float(s[j].sum() / n[j].sum().clamp(min=1))
                clip[f"{stage}_tokens"] = int(n[j].sum())
    model.train(was_training)
    result: dict[str, Any] = {"clips": len(per_clip)}
    for stage in sums:
        total = float(sums[stage].sum() / counts[stage].sum().clamp(min=1))
        result[f"nll_{stage}"] = total
        result[f"ppl_{stage}"] = math.exp(min(total, 50.0))
        if stage == "acoustic":
            cb = (sums[stage] / counts[stage].clamp(min=1)).tolist()
            result["nll_acoustic_per_codebook"] = cb
            result["ppl_acoustic_per_codebook"] = [math.exp(min(x, 50.0)) for x in cb]
    result["per_clip"] = per_clip
    return result
