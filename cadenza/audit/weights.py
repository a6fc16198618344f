"""Per-clip sampling weights that flatten one grouping, capped, and the distribution they produce.

Each clip counts toward its rarest group in the grouping (a salsa-and-jazz clip is weighted as
salsa). Weights aim for an equal share per specified group while keeping the specified clips'
total mass; no clip is sampled more than `cap` times its unweighted rate, and the mass lost to the
cap is spread over the others (water-filling). Unspecified clips keep weight 1.
With balance_annotators, weights are raked so that annotators also carry equal shares (every clip
takes part), so a model does not learn one annotator's captioning style as a group's sound.
The trainer multiplies its sampling probability by weights[ytid] (default 1.0).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadenza.audit.groupings import UNSPECIFIED
from cadenza.audit.taxonomy import Assignment


def primary_groups(assignments: Sequence[Assignment], grouping: str) -> list[str]:
    counts = Counter(g for a in assignments for g in a.groups[grouping])
    return [min(a.groups[grouping], key=lambda g: (counts[g], g)) for a in assignments]


def _capped(raw: Sequence[float], cap: float) -> list[float]:
    """Scale `raw` so the values keep their total count as mass, no value above `cap`; the mass the cap
    removes is spread over the others (water-filling, by bisection on the scale)."""
    total = float(len(raw))

    def mass(scale: float) -> float:
        return sum(min(cap, scale * r) for r in raw)

    lo, hi = 0.0, 1.0
    while mass(hi) < total and hi < 1e12:
        hi *= 2
    for _ in range(100):  # mass() is monotone in the scale
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mass(mid) < total else (lo, mid)
    return [min(cap, hi * r) for r in raw]


def _raked(primary: list[str], authors: list[int], rounds: int = 50) -> list[float]:
    """Raking (iterative proportional fitting): weights under which every specified group and every
    annotator carries an equal share of the mass. Unspecified clips take part in the annotator margin only."""
    w = [1.0] * len(primary)
    groups = sorted({g for g in primary if g != UNSPECIFIED})
    specified_mass = float(sum(1 for g in primary if g != UNSPECIFIED))
    for _ in range(rounds):
        if groups:
            per_group = Counter()
            for g, x in zip(primary, w, strict=True):
                per_group[g] += x
            target = specified_mass / len(groups)
            w = [x if g == UNSPECIFIED else x * target / per_group[g] for g, x in zip(primary, w, strict=True)]
        per_author = Counter()
        for a, x in zip(authors, w, strict=True):
            per_author[a] += x
        target = sum(w) / len(per_author)
        w = [x * target / per_author[a] for a, x in zip(authors, w, strict=True)]
    return w


def flatten_weights(
    assignments: Sequence[Assignment], grouping: str, cap: float = 5.0, balance_annotators: bool = False
) -> list[float]:
    """Weights flattening `grouping` (unspecified clips keep 1), capped; with balance_annotators, raked so
    that annotators carry equal shares too (every clip takes part), then capped."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1 (got {cap})")
    primary = primary_groups(assignments, grouping)
    if balance_annotators and assignments:
        return _capped(_raked(primary, [a.clip.author_id for a in assignments]), cap)
    specified = [g for g in primary if g != UNSPECIFIED]
    counts = Counter(specified)
    if not counts:
        return [1.0] * len(assignments)
    target = len(specified) / len(counts)  # clips per group under a flat distribution
    raw = [target / counts[g] if g != UNSPECIFIED else None for g in primary]
    capped = iter(_capped([r for r in raw if r is not None], cap))
    return [1.0 if r is None else next(capped) for r in raw]


def annotator_shares(assignments: Sequence[Assignment], weights: Sequence[float]) -> dict[str, float]:
    """Share of sampling mass per annotator."""
    total = sum(weights)
    out: Counter = Counter()
    for a, w in zip(assignments, weights, strict=True):
        out[str(a.clip.author_id)] += w
    return {k: v / total for k, v in sorted(out.items(), key=lambda kv: -kv[1])} if total else {}


def weighted_shares(assignments: Sequence[Assignment], grouping: str, weights: Sequence[float]) -> dict[str, float]:
    """Share of sampling mass per group (a clip counts toward each of its groups)."""
    total = sum(weights)
    out: dict[str, float] = {}
    for a, w in zip(assignments, weights, strict=True):
        for g in a.groups[grouping]:
            out[g] = out.get(g, 0.0) + w
    return {g: v / total for g, v in sorted(out.items(), key=lambda kv: -kv[1])} if total else {}


def weights_by_ytid(assignments: Sequence[Assignment], weights: Sequence[float]) -> dict[str, float]:
    """ytid -> weight; a ytid with several windows keeps the largest of its weights."""
    out: dict[str, float] = {}
    for a, w in zip(assignments, weights, strict=True):
        out[a.clip.ytid] = max(w, out.get(a.clip.ytid, 0.0))
    return out


def write_weights(
    path: str | os.PathLike[str],
    grouping: str,
    cap: float,
    weights: dict[str, float],
    groups: dict[str, str] | None = None,
) -> None:
    """JSON {"grouping","cap","weights": {ytid: w}}; parquet (ytid, weight, group) when the path ends .parquet."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        ytids = sorted(weights)
        table = pa.table(
            {
                "ytid": ytids,
                "weight": [weights[y] for y in ytids],
                "group": [(groups or {}).get(y, "") for y in ytids],
            }
        ).replace_schema_metadata({"grouping": grouping, "cap": str(cap)})
        pq.write_table(table, p)
        return
    doc: dict[str, Any] = {"grouping": grouping, "cap": cap, "weights": dict(sorted(weights.items()))}
    if groups:
        doc["groups"] = dict(sorted(groups.items()))
    p.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def load_weights(path: str | os.PathLike[str]) -> dict[str, float]:
    """ytid -> weight from a file `write_weights` wrote (JSON or parquet)."""
    p = Path(path)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(p, columns=["ytid", "weight"]).to_pydict()
        return dict(zip(t["ytid"], (float(w) for w in t["weight"]), strict=True))
    doc = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("weights"), dict):
        raise ValueError(f"{p}: not a cadenza weights file (expected {{'grouping','cap','weights'}})")
    return {str(k): float(v) for k, v in doc["weights"].items()}
