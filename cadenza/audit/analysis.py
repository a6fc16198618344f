"""The audit's figures, computed from taxonomy assignments (no I/O, no prose: see findings.py)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from cadenza.audit.groupings import GROUPINGS, ROLLUPS, UNSPECIFIED
from cadenza.audit.stats import benjamini_hochberg, mantel_haenszel, two_by_two
from cadenza.audit.taxonomy import Assignment, Taxonomy
from cadenza.common.stats import wilson
from cadenza.musiccaps.schema import split_of

COVERAGE_SPLITS = ("balanced", "audioset_eval", "audioset_train")


def groups_of(a: Assignment, grouping: str) -> list[str]:
    return [a.rollup] if grouping == "rollup" else a.groups[grouping]


def all_groups(taxonomy: Taxonomy, grouping: str) -> list[str]:
    if grouping == "rollup":
        return list(ROLLUPS)
    return [*taxonomy.groupings[grouping]["groups"], UNSPECIFIED]


def _coverage_table(subset: Sequence[Assignment], taxonomy: Taxonomy, grouping: str) -> dict[str, Any]:
    n = len(subset)
    counts = Counter(g for a in subset for g in groups_of(a, grouping))
    specified = n - counts.get(UNSPECIFIED, 0)
    rows = []
    for g in all_groups(taxonomy, grouping):
        k = counts.get(g, 0)
        row: dict[str, Any] = {
            "group": g,
            "label": taxonomy.group_label(grouping, g),
            "count": k,
            "share": k / n if n else 0.0,
            "ci": list(wilson(k, n)),
        }
        if g != UNSPECIFIED:
            row["share_of_specified"] = k / specified if specified else 0.0
            row["ci_of_specified"] = list(wilson(k, specified))
        rows.append(row)
    rows.sort(key=lambda r: (-r["count"], r["group"]))
    return {"clips": n, "specified": specified, "rows": rows}


def coverage(assignments: Sequence[Assignment], taxonomy: Taxonomy, grouping: str) -> dict[str, Any]:
    """Counts and shares (Wilson 95% CIs) overall, by split and by annotator.

    Groupings other than the roll-up are multi-label: a clip counts in every group it has evidence
    for, so shares can sum to more than 1. Every clip is in at least one group ("unspecified" if none).
    """
    out = _coverage_table(assignments, taxonomy, grouping)
    out["accounted"] = sum(1 for a in assignments if groups_of(a, grouping))
    out["multi_group_clips"] = sum(1 for a in assignments if len(groups_of(a, grouping)) > 1)
    out["by_split"] = {
        s: _coverage_table([a for a in assignments if split_of(a.clip, s)], taxonomy, grouping) for s in COVERAGE_SPLITS
    }
    authors = sorted({a.clip.author_id for a in assignments})
    out["by_annotator"] = {
        str(au): _coverage_table([a for a in assignments if a.clip.author_id == au], taxonomy, grouping)
        for au in authors
    }
    return out


def rollup_summary(assignments: Sequence[Assignment], taxonomy: Taxonomy) -> dict[str, Any]:
    counts = Counter(a.rollup for a in assignments)
    specified = len(assignments) - counts.get(UNSPECIFIED, 0)
    south_any = counts.get("global_south", 0) + counts.get("mixed", 0)
    north_only = counts.get("global_north", 0)
    return {
        "counts": {r: counts.get(r, 0) for r in ROLLUPS},
        "specified": specified,
        "global_south_any_share": south_any / specified if specified else 0.0,
        "global_south_any_ci": list(wilson(south_any, specified)),
        "global_north_only_share": north_only / specified if specified else 0.0,
        "global_north_only_ci": list(wilson(north_only, specified)),
        "reference_share": taxonomy.reference_share,
    }


def descriptor_matrix(assignments: Sequence[Assignment], taxonomy: Taxonomy) -> tuple[dict[str, np.ndarray], dict]:
    """Per descriptor family, a bool per clip; and each family's description and overall rate."""
    present: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for name, d in taxonomy.descriptors.items():
        info: dict[str, Any] = {"label": d.label, "kind": d.kind, "not_for": list(d.not_for)}
        if d.numeric:
            values = np.array([getattr(a, d.numeric) for a in assignments], dtype=float)
            threshold = float(np.median(values)) if len(values) else 0.0
            present[name] = values > threshold
            info.update({"field": d.numeric, "median": threshold, "mean": float(values.mean()) if len(values) else 0.0})
        else:
            present[name] = np.array([name in a.descriptor_hits for a in assignments], dtype=bool)
        info["count"] = int(present[name].sum())
        info["rate"] = float(present[name].mean()) if len(assignments) else 0.0
        meta[name] = info
    return present, meta


def _rr(a: float, b: float, c: float, d: float) -> float:
    if min(a, b, c, d) == 0:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    return (a / (a + b)) / (c / (c + d))


def _outside(x: float, ci: Sequence[float]) -> bool:
    return not (ci[0] <= x <= ci[1])


def associations(assignments: Sequence[Assignment], taxonomy: Taxonomy, min_group: int) -> dict[str, Any]:
    """Every group x descriptor family: crude 2x2 against the rest, annotator-stratified Mantel-Haenszel,
    BH q-values for both, and whether the conclusion changes once annotators are accounted for."""
    present, meta = descriptor_matrix(assignments, taxonomy)
    n = len(assignments)
    authors = sorted({a.clip.author_id for a in assignments})
    author_idx = np.array([authors.index(a.clip.author_id) for a in assignments], dtype=int)
    n_auth = len(authors)
    per_author = np.bincount(author_idx, minlength=n_auth)
    tests: list[dict[str, Any]] = []
    for grouping in (*GROUPINGS, "rollup"):
        for group in all_groups(taxonomy, grouping):
            if group == UNSPECIFIED:
                continue
            member = np.array([group in groups_of(a, grouping) for a in assignments], dtype=bool)
            n_g = int(member.sum())
            if n_g < min_group or n - n_g < min_group:
                continue
            for name, has in present.items():
                if grouping in meta[name]["not_for"] or not has.any() or has.all():
                    continue
                cells = [
                    np.bincount(author_idx[sel], minlength=n_auth)
                    for sel in (member & has, member & ~has, ~member & has, ~member & ~has)
                ]
                a, b, c, d = (int(x.sum()) for x in cells)
                crude = two_by_two(a, b, c, d)
                strata = list(zip(*(x.tolist() for x in cells), strict=True))
                mh = mantel_haenszel(strata)
                loo = [_rr(a - cells[0][k], b - cells[1][k], c - cells[2][k], d - cells[3][k]) for k in range(n_auth)]
                tests.append(
                    {
                        "grouping": grouping,
                        "group": group,
                        "descriptor": name,
                        "n_group": n_g,
                        "crude": crude.to_dict(),
                        "mh": mh.to_dict(),
                        "_loo": loo,
                        "_cells": cells,
                    }
                )
    return {"descriptors": meta, "tests": tests, "authors": authors, "_per_author": per_author}


def apply_fdr(metrics: dict[str, Any], alpha: float) -> int:
    """One Benjamini-Hochberg family for every test that can raise an alert (crude and stratified
    associations, annotator profiles, survival), so that on data without effects the chance of any
    alert stays near alpha. Then decide, per association, whether annotators change the conclusion.
    Returns the number of tests."""
    desc = metrics["description"]
    tests = desc["tests"]
    profile_entries = [e for p in metrics["annotators"]["profiles"] for e in p["descriptors"].values() if "p" in e]
    survival_rows = [
        r for rows in (metrics.get("survival") or {}).get("by_grouping", {}).values() for r in rows if "p" in r
    ]
    pvalues = [t["crude"]["p"] for t in tests] + [t["mh"]["p"] for t in tests]
    pvalues += [e["p"] for e in profile_entries] + [r["p"] for r in survival_rows]
    qs = iter(benjamini_hochberg(pvalues))
    for t in tests:
        t["q"] = next(qs)
    for t in tests:
        t["q_mh"] = next(qs)
    for item in (*profile_entries, *survival_rows):
        item["q"] = next(qs)
        item["significant"] = item["q"] < alpha
    per_author = desc.pop("_per_author")
    for t in tests:
        crude_sig, mh_sig = t["q"] < alpha, t["q_mh"] < alpha
        rr, mh_rr = t["crude"]["rr"], t["mh"]["rr"]
        flips = crude_sig and mh_sig and (rr - 1) * (mh_rr - 1) < 0
        differ = _outside(rr, t["mh"]["rr_ci"]) or _outside(mh_rr, t["crude"]["rr_ci"])
        t["significant"] = crude_sig
        t["significant_mh"] = mh_sig
        # "mostly annotators": both significant, but stratifying removes over half of the log effect
        shrinks = crude_sig and mh_sig and 0 < mh_rr < math.inf and abs(math.log(mh_rr)) < 0.5 * abs(math.log(rr))
        t["conclusion_changes"] = bool(((crude_sig != mh_sig) or flips or shrinks) and differ)
        loo, cells = t.pop("_loo"), t.pop("_cells")
        t["driver"] = _driver(loo, cells, per_author, desc["authors"], mh_rr) if t["conclusion_changes"] else None
    return len(pvalues)


def _driver(
    loo: list[float], cells: list[np.ndarray], per_author: np.ndarray, authors: list[int], mh_rr: float
) -> dict:
    """The annotator whose clips, left out, bring the crude risk ratio closest to the stratified one."""
    target = math.log(mh_rr) if 0 < mh_rr < math.inf else 0.0
    k = int(np.argmin([abs(math.log(x) - target) if 0 < x < math.inf else math.inf for x in loo]))
    a, b, c, d = (x.astype(float) for x in cells)
    group_k, group_all = a[k] + b[k], a.sum() + b.sum()
    has_k = a[k] + c[k]
    others_has, others_n = (a.sum() + c.sum()) - has_k, per_author.sum() - per_author[k]
    return {
        "author_id": authors[k],
        "rr_without": loo[k],
        "rate_annotator": float(has_k / per_author[k]) if per_author[k] else 0.0,
        "rate_others": float(others_has / others_n) if others_n else 0.0,
        "share_of_group": float(group_k / group_all) if group_all else 0.0,
        "share_of_all": float(per_author[k] / per_author.sum()),
    }


def numeric_by_group(assignments: Sequence[Assignment], grouping: str) -> dict[str, dict[str, float]]:
    sums: dict[str, list[float]] = {}
    for a in assignments:
        for g in groups_of(a, grouping):
            s = sums.setdefault(g, [0, 0.0, 0.0])
            s[0] += 1
            s[1] += a.caption_words
            s[2] += a.aspect_count
    return {
        g: {"n": int(s[0]), "caption_words_mean": s[1] / s[0], "aspect_count_mean": s[2] / s[0]}
        for g, s in sorted(sums.items(), key=lambda kv: -kv[1][0])
    }


def annotator_profiles(assignments: Sequence[Assignment], taxonomy: Taxonomy, min_group: int = 1) -> dict[str, Any]:
    """Each annotator's rate for every descriptor family against all other annotators; annotators with fewer
    than `min_group` clips (or all but fewer) are described but not tested."""
    present, _ = descriptor_matrix(assignments, taxonomy)
    authors = sorted({a.clip.author_id for a in assignments})
    ids = np.array([a.clip.author_id for a in assignments])
    words = np.array([a.caption_words for a in assignments], dtype=float)
    aspects = np.array([a.aspect_count for a in assignments], dtype=float)
    profiles, tests = [], []
    for au in authors:
        mine = ids == au
        prof: dict[str, Any] = {
            "author_id": au,
            "clips": int(mine.sum()),
            "caption_words_mean": float(words[mine].mean()),
            "aspect_count_mean": float(aspects[mine].mean()),
            "descriptors": {},
        }
        for name, has in present.items():
            t = two_by_two(
                int((mine & has).sum()), int((mine & ~has).sum()), int((~mine & has).sum()), int((~mine & ~has).sum())
            )
            entry = {"rate": t.rate_in, "rate_others": t.rate_rest, "rr": t.rr, "rr_ci": list(t.rr_ci), "p": t.p}
            if min(prof["clips"], len(assignments) - prof["clips"]) < min_group:
                entry = {**entry, "significant": False, "tested": False}
                del entry["p"]
            prof["descriptors"][name] = entry
            tests.append(entry)
        profiles.append(prof)
    return {"profiles": profiles}


def survival_by_group(assignments: Sequence[Assignment], survival, min_group: int) -> dict[str, Any]:
    """Survival rate per group (Wilson CI) and a test of each group against the rest (BH across all)."""
    from cadenza.audit.survival import LOST, PENDING, STATUSES, SURVIVED

    status = [survival.status.get(a.clip.key, PENDING) for a in assignments]
    done = np.array([s in (SURVIVED, LOST) for s in status])  # only clip-side failures count as lost
    alive = np.array([s == SURVIVED for s in status])
    waiting = np.array([s == PENDING for s in status])
    counts = Counter(status)
    n_done = int(done.sum())
    out: dict[str, Any] = {
        "kind": survival.kind,
        "source": survival.source,
        "counts": {s: counts.get(s, 0) for s in STATUSES},
        "overall_rate": float(alive.sum() / n_done) if n_done else 0.0,
        "overall_ci": list(wilson(int(alive.sum()), n_done)),
        "lost_by_category": dict(Counter(survival.lost_category.values()).most_common()),
        "pending_by_category": dict(Counter(survival.pending_category.values()).most_common()),
        "unresolved_by_category": dict(Counter(survival.unresolved_category.values()).most_common()),
        "session": (survival.manifest or {}).get("session"),
        "unknown_keys": len(survival.unknown_keys),
        "manifest": survival.manifest,
        "by_grouping": {},
    }
    rows_all = []
    for grouping in (*GROUPINGS, "rollup"):
        rows = []
        labels = sorted({g for a in assignments for g in groups_of(a, grouping)})
        for group in labels:
            member = np.array([group in groups_of(a, grouping) for a in assignments], dtype=bool)
            s_in, l_in = int((member & alive).sum()), int((member & done & ~alive).sum())
            s_out, l_out = int((~member & alive).sum()), int((~member & done & ~alive).sum())
            row: dict[str, Any] = {
                "group": group,
                "clips": int(member.sum()),
                "survived": s_in,
                "lost": l_in,
                "pending": int((member & waiting).sum()),
                "unresolved": int((member & ~done & ~waiting).sum()),
                "rate": s_in / (s_in + l_in) if s_in + l_in else 0.0,
                "ci": list(wilson(s_in, s_in + l_in)),
                "lost_by_category": dict(
                    Counter(
                        survival.lost_category[a.clip.key]
                        for a, m in zip(assignments, member, strict=True)
                        if m and status_of(survival, a) == LOST
                    ).most_common()
                ),
            }
            if group != UNSPECIFIED and s_in + l_in >= min_group and s_out + l_out >= min_group:
                # exact binomial test of the group's survival against the overall rate
                overall = out["overall_rate"]
                p = float(stats.binomtest(s_in, s_in + l_in, overall).pvalue) if 0 < overall < 1 else 1.0
                row.update(
                    {
                        "rate_rest": s_out / (s_out + l_out),
                        "ratio_to_overall": row["rate"] / overall if overall else 0.0,
                        "ratio_ci": [x / overall if overall else 0.0 for x in row["ci"]],
                        "p": p,
                        "test": "binomial vs overall rate",
                    }
                )
                rows_all.append(row)
            rows.append(row)
        out["by_grouping"][grouping] = sorted(rows, key=lambda r: -r["clips"])
    return out


def status_of(survival, a: Assignment) -> str:
    return survival.status.get(a.clip.key, "pending")
