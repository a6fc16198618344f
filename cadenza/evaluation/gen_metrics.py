"""Distribution and adherence metrics over per-clip embeddings, built to stay honest at small n.

- `distances`: KAD (squared MMD, unbiased estimator, RBF kernel) and the Frechet distance between
  generated and reference embeddings, each with a bootstrap CI, next to a *reference floor*: the same
  distance between two random halves of the references. A model is only as close to the data as that
  floor says two samples of the data itself are.
- `adherence`: a small scikit-learn classifier fitted on reference embeddings (codec reconstructions,
  so codec artefacts are not errors) and applied to samples generated from the same labels' captions.
- `mainstream_pull`: per label, whether its samples lie nearer the other labels' references than its
  own (GlobalDISCO's "pull toward the mainstream").

Everything takes plain arrays [N, D]; embeddings are standardised with the references' statistics.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from cadenza.common.stats import wilson
from cadenza.evaluation.token_metrics import frechet_distance


def standardise(ref: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array by the references' mean and std (dimensions with no spread are left unscaled)."""
    mu, sd = ref.mean(0), ref.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    return [(a - mu) / sd for a in (ref, *others)]


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray) -> float:
    """Median pairwise distance of the pooled embeddings: the usual scale-free RBF bandwidth."""
    d = np.sqrt(_sqdist(x, x))[np.triu_indices(len(x), 1)]
    med = float(np.median(d)) if d.size else 1.0
    return med if med > 1e-8 else 1.0


def _offdiag_mean(k: np.ndarray, idx: np.ndarray) -> float:
    # pairs of the same original clip (a bootstrap draws some twice) are left out, as the diagonal is
    keep = idx[:, None] != idx[None, :]
    return float(k[keep].mean()) if keep.any() else float("nan")


def kad(x: np.ndarray, y: np.ndarray, bandwidth: float, ix: np.ndarray | None = None,
        iy: np.ndarray | None = None) -> float:
    """Unbiased squared MMD between the rows of x and y (RBF kernel); ix/iy: original indices of the rows."""
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    ix = np.arange(len(x)) if ix is None else ix
    iy = np.arange(len(y)) if iy is None else iy
    g = 1.0 / (2 * bandwidth**2)
    kxx, kyy, kxy = (np.exp(-g * _sqdist(a, b)) for a, b in ((x, x), (y, y), (x, y)))
    return _offdiag_mean(kxx, ix) + _offdiag_mean(kyy, iy) - 2 * float(kxy.mean())


def _interval(values: list[float]) -> list[float]:
    v = np.asarray([x for x in values if math.isfinite(x)])
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v.size else [float("nan")] * 2


def distances(gen: np.ndarray, ref: np.ndarray, *, boots: int = 300, seed: int = 0) -> dict[str, Any]:
    """KAD and FD of generated vs reference embeddings with bootstrap CIs, and the half-split reference floor."""
    ref_s, gen_s = standardise(ref, gen)
    bw = median_bandwidth(np.concatenate([ref_s, gen_s]))
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"generated": len(gen), "references": len(ref), "bandwidth": bw}
    kad_b, fd_b, kad_f, fd_f = [], [], [], []
    for _ in range(boots):
        ig, ir = rng.integers(0, len(gen), len(gen)), rng.integers(0, len(ref), len(ref))
        kad_b.append(kad(gen_s[ig], ref_s[ir], bw, ig, ir))
        fd_b.append(frechet_distance(gen_s[ig], ref_s[ir]))
        perm = rng.permutation(len(ref))
        a, b = perm[: len(ref) // 2], perm[len(ref) // 2 :]
        kad_f.append(kad(ref_s[a], ref_s[b], bw))
        fd_f.append(frechet_distance(ref_s[a], ref_s[b]))
    out["kad"] = {"value": kad(gen_s, ref_s, bw), "ci95": _interval(kad_b)}
    out["fd"] = {"value": frechet_distance(gen_s, ref_s), "ci95": _interval(fd_b)}
    # the floor at half the references: what two samples of the data itself score against each other
    out["kad_floor"] = {"value": _finite_mean(kad_f), "ci95": _interval(kad_f)}
    out["fd_floor"] = {"value": _finite_mean(fd_f), "ci95": _interval(fd_f)}
    out["kad_above_floor"] = bool(out["kad"]["ci95"][0] > out["kad_floor"]["ci95"][1])
    return out


def _finite_mean(v: list[float]) -> float:
    a = np.asarray([x for x in v if math.isfinite(x)])
    return float(a.mean()) if a.size else float("nan")


def fit_classifier(x: np.ndarray, labels: list[str]):
    """Standardise + multinomial logistic regression: small, deterministic, needs no tuning."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    return clf.fit(x, labels)


def adherence(ref: np.ndarray, ref_labels: list[str], gen: np.ndarray, gen_labels: list[str]) -> dict[str, Any]:
    """Accuracy of a classifier fitted on the references, on samples generated for known labels.

    chance: the better of uniform guessing over the classifier's labels and always answering the
    commonest label among the samples (so an imbalanced prompt set cannot look like adherence)."""
    classes = sorted(set(ref_labels))
    if len(classes) < 2 or not len(gen):
        return {"skipped": f"needs references of at least 2 labels and some samples (have {len(classes)} labels)"}
    clf = fit_classifier(ref, ref_labels)
    pred = [str(p) for p in clf.predict(gen)]
    hits = [p == t for p, t in zip(pred, gen_labels, strict=True)]
    commonest = Counter(gen_labels).most_common(1)[0][1] / len(gen_labels)
    chance = max(1 / len(classes), commonest)
    acc = sum(hits) / len(hits)
    ci = list(wilson(sum(hits), len(hits)))
    per_label: dict[str, Any] = {}
    for lab in sorted(set(gen_labels)):
        h = [ok for ok, t in zip(hits, gen_labels, strict=True) if t == lab]
        per_label[lab] = {"samples": len(h), "accuracy": sum(h) / len(h), "ci95": list(wilson(sum(h), len(h))),
                          "known_to_classifier": lab in classes}
    return {
        "classes": classes, "samples": len(hits), "accuracy": acc, "ci95": ci, "chance": chance,
        "ratio_to_chance": acc / chance, "above_chance": bool(ci[0] > chance),
        "reference_accuracy_cv": _cv_accuracy(ref, ref_labels),
        "per_label": per_label, "predictions": pred,
    }


def _cv_accuracy(x: np.ndarray, labels: list[str]) -> float | None:
    """Leave-one-out accuracy on the references themselves: how separable the labels are at all."""
    counts = Counter(labels)
    if len(counts) < 2 or min(counts.values()) < 2 or len(labels) > 400:
        return None
    hits = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        rest = [lab for j, lab in enumerate(labels) if j != i]
        if len(set(rest)) < 2:
            continue
        hits += str(fit_classifier(x[keep], rest).predict(x[i : i + 1])[0]) == labels[i]
    return hits / len(labels)


def mainstream_pull(ref: np.ndarray, ref_labels: list[str], gen: np.ndarray, gen_labels: list[str]) -> dict[str, Any]:
    """Per label: mean distance of its samples to its own references and to all other references.

    flagged: the samples sit nearer the rest of the data than their own references. For comparison,
    the same two distances for the label's own references (leave-one-out) say how far apart the
    labels are in the data itself."""
    ref_s, gen_s = standardise(ref, gen)
    ra, ga = np.asarray(ref_labels), np.asarray(gen_labels)
    table: dict[str, Any] = {}
    for lab in sorted(set(gen_labels)):
        own, rest, mine = ref_s[ra == lab], ref_s[ra != lab], gen_s[ga == lab]
        if not len(own) or not len(rest):
            table[lab] = {"samples": len(mine), "skipped": "no references of this label or none of the others"}
            continue
        d_own = float(np.sqrt(_sqdist(mine, own)).mean())
        d_rest = float(np.sqrt(_sqdist(mine, rest)).mean())
        row: dict[str, Any] = {"samples": len(mine), "references": len(own), "distance_own": d_own,
                               "distance_rest": d_rest, "pull_ratio": d_own / max(d_rest, 1e-12),
                               "flagged": bool(d_rest < d_own)}
        if len(own) >= 2:
            dd = np.sqrt(_sqdist(own, own))
            row["reference_distance_own"] = float(dd[~np.eye(len(own), dtype=bool)].mean())
            row["reference_distance_rest"] = float(np.sqrt(_sqdist(own, rest)).mean())
        table[lab] = row
    return {"labels": table, "flagged": sorted(k for k, v in table.items() if v.get("flagged"))}
