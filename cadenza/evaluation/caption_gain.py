"""Caption information gain: how much held-out NLL rises when a clip is scored with another clip's caption.

gain = NLL(tokens | mismatched caption) - NLL(tokens | true caption), in nats per token, per stage and per
acoustic codebook. A model that ignores its text scores the same with any caption (gain ~ 0); one that
listens pays for a wrong caption. Mismatched captions come from other clips with a different caption,
and from another group (audit genre, region, ...) whenever the clip's group is known and another
group exists. The CI is a bootstrap over clips (the clip is the unit that was sampled), paired: each
clip's true and mismatched NLL are drawn together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cadenza.formats.token_spec import TokenSpec
from cadenza.training.batch import collate
from cadenza.training.nll import batch_to


def mismatch_donors(
    texts: list[np.ndarray], groups: list[str | None], draws: int, seed: int = 0
) -> tuple[list[list[int]], int]:
    """For each clip, `draws` other clips whose caption differs, from another group when one exists.
    Returns (donors, clips whose donors came from another group)."""
    rng = np.random.default_rng(seed)
    n = len(texts)
    flat = np.stack([np.asarray(t, np.float32) for t in texts]) if n else np.zeros((0, 1))
    donors, cross = [], 0
    for i in range(n):
        differs = [j for j in range(n) if j != i and not np.array_equal(flat[j], flat[i])]
        other = [j for j in differs if groups[i] is not None and groups[j] is not None and groups[j] != groups[i]]
        pool = other or differs
        cross += bool(other)
        donors.append([int(j) for j in rng.choice(pool, size=draws, replace=len(pool) < draws)] if pool else [])
    return donors, cross


@torch.no_grad()
def _clip_nll(model, clips: list[dict[str, Any]], texts: list[np.ndarray], spec: TokenSpec, batch_size: int,
              device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Summed NLL and token counts per clip: semantic [N], [N]; acoustic per codebook [N, K], [N, K]."""
    sem_s, sem_n, ac_s, ac_n = [], [], [], []
    for i in range(0, len(clips), batch_size):
        samples = [
            {"key": c["key"], "ytid": c["ytid"], "url": "", "semantic": c["semantic"], "acoustic": c["acoustic"],
             "text": t.astype(np.float16)}
            for c, t in zip(clips[i : i + batch_size], texts[i : i + batch_size], strict=True)
        ]
        out = model(batch_to(collate(samples, spec), device), cfg_drop=False)
        sem_s.append(out["nll_semantic"].double().cpu().numpy()[:, 0])
        sem_n.append(out["count_semantic"].double().cpu().numpy()[:, 0])
        ac_s.append(out["nll_acoustic"].double().cpu().numpy())
        ac_n.append(out["count_acoustic"].double().cpu().numpy())
    return np.concatenate(sem_s), np.concatenate(sem_n), np.concatenate(ac_s), np.concatenate(ac_n)


def _ratio_with_ci(diff: np.ndarray, base: np.ndarray, count: np.ndarray, idx: np.ndarray,
                   boots: int, rng: np.random.Generator) -> dict[str, Any]:
    """Token-weighted mean gain over the clips `idx`, with a paired bootstrap CI over those clips."""
    if not len(idx) or count[idx].sum() == 0:
        return {"gain": float("nan"), "ci95": [float("nan")] * 2, "excludes_zero": False}
    tok = count[idx].sum()
    draws = rng.integers(0, len(idx), size=(boots, len(idx)))
    sel = idx[draws]
    boot = diff[sel].sum(1) / np.maximum(count[sel].sum(1), 1)
    lo, hi = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    return {
        "nll_true": float(base[idx].sum() / tok),
        "nll_mismatched": float((base[idx] + diff[idx]).sum() / tok),
        "gain": float(diff[idx].sum() / tok),
        "ci95": [lo, hi],
        "excludes_zero": bool(lo > 0 or hi < 0),
    }


class CaptionGain:
    """Per-clip NLL under the true and under mismatched captions; `summary` over any subset of clips."""

    def __init__(self, model, clips: list[dict[str, Any]], spec: TokenSpec, *, groups: list[str | None] | None = None,
                 draws: int = 2, batch_size: int = 8, device: str = "cpu", seed: int = 0, boots: int = 1000):
        self.clips = [c for c in clips if c.get("text") is not None]
        self.keys = [c["key"] for c in self.clips]
        self.boots, self.seed = boots, seed
        texts = [c["text"] for c in self.clips]
        grp = groups if groups is not None else [None] * len(clips)
        grp = [g for g, c in zip(grp, clips, strict=True) if c.get("text") is not None]
        self.donors, self.cross_group = mismatch_donors(texts, grp, draws, seed)
        usable = [i for i, d in enumerate(self.donors) if d]
        self.usable = np.asarray(usable, dtype=int)
        s, sn, a, an = _clip_nll(model, self.clips, texts, spec, batch_size, device)
        s_mis, a_mis = np.zeros_like(s), np.zeros_like(a)
        for r in range(draws):
            mis = [texts[d[r]] if d else texts[i] for i, d in enumerate(self.donors)]
            ms, _, ma, _ = _clip_nll(model, self.clips, mis, spec, batch_size, device)
            s_mis, a_mis = s_mis + ms / draws, a_mis + ma / draws
        self.sem, self.sem_n, self.sem_diff = s, sn, s_mis - s
        self.ac, self.ac_n, self.ac_diff = a, an, a_mis - a

    def summary(self, keys: set[str] | None = None) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed)
        idx = self.usable if keys is None else np.asarray([i for i in self.usable if self.keys[i] in keys], dtype=int)
        out: dict[str, Any] = {"clips": int(len(idx))}
        if keys is None:
            out["clips_with_other_group_caption"] = int(self.cross_group)
            out["mismatched_draws_per_clip"] = len(self.donors[0]) if self.donors else 0
        out["semantic"] = _ratio_with_ci(self.sem_diff, self.sem, self.sem_n, idx, self.boots, rng)
        out["acoustic"] = _ratio_with_ci(
            self.ac_diff.sum(1), self.ac.sum(1), self.ac_n.sum(1), idx, self.boots, rng
        )
        out["acoustic_per_codebook"] = [
            _ratio_with_ci(self.ac_diff[:, k], self.ac[:, k], self.ac_n[:, k], idx, self.boots, rng)
            for k in range(self.ac.shape[1])
        ]
        return out
