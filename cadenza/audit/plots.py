"""The audit's plots (matplotlib, Agg backend): each returns PNG bytes."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from cadenza.common.plotting import pyplot

plt = pyplot()

NORTH, SOUTH, MIXED, GREY = "#3b6ea5", "#d1793b", "#8a6fb0", "#9a9a9a"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def coverage_bars(cov: dict[str, Any], title: str, colours: dict[str, str] | None = None) -> bytes:
    """Share of the clips with evidence, per group, with Wilson 95% CIs."""
    rows = [r for r in cov["rows"] if r["group"] != "unspecified"][::-1]
    if not cov["specified"]:
        fig, ax = plt.subplots(figsize=(7, 1.2))
        ax.text(0.5, 0.5, f"{title}: no clip has evidence ({cov['clips']} unspecified)", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    fig, ax = plt.subplots(figsize=(7, max(2.2, 0.28 * len(rows) + 1.4)), layout="constrained")
    shares = np.array([r["share_of_specified"] for r in rows]) * 100
    lo = np.maximum(shares - np.array([r["ci_of_specified"][0] for r in rows]) * 100, 0)
    hi = np.maximum(np.array([r["ci_of_specified"][1] for r in rows]) * 100 - shares, 0)
    colour = [(colours or {}).get(r["group"], NORTH) for r in rows]
    ax.barh([r["label"] for r in rows], shares, xerr=[lo, hi], color=colour, capsize=2, error_kw={"lw": 0.8})
    for y, r in enumerate(rows):
        ax.text(shares[y] + hi[y] + 0.3, y, str(r["count"]), va="center", fontsize=7)
    ax.set_xlabel(
        f"% of the {cov['specified']} clips with evidence (95% Wilson CI); "
        f"{cov['clips'] - cov['specified']} unspecified"
    )
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    return _png(fig)


def rollup_bar(rollup: dict[str, Any]) -> bytes:
    counts = rollup["counts"]
    names = ["global_north", "mixed", "global_south", "unspecified"]
    labels = ["Global North", "Both", "Global South", "Unspecified"]
    fig, ax = plt.subplots(figsize=(7, 1.8), layout="constrained")
    left = 0
    total = sum(counts.values()) or 1
    for name, label, colour in zip(names, labels, [NORTH, MIXED, SOUTH, GREY], strict=True):
        w = counts[name] / total * 100
        ax.barh([0], [w], left=left, color=colour, label=f"{label} {counts[name]}")
        left += w
    ref = rollup["reference_share"].get("global_south")
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("% of all clips")
    title = "Global North / South roll-up of region evidence"
    if ref:
        title += f" (world population: {100 * ref:.0f}% Global South)"
    ax.set_title(title, fontsize=10)
    ax.legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.45), frameon=False)
    return _png(fig)


def rr_heatmap(tests: list[dict], grouping: str, labels: dict[str, str], descriptors: dict[str, Any]) -> bytes | None:
    """log2 risk ratio per group x descriptor, crude and annotator-stratified side by side."""
    rows = [t for t in tests if t["grouping"] == grouping]
    if not rows:
        return None
    groups = sorted({t["group"] for t in rows}, key=lambda g: labels.get(g, g))
    descs = [d for d in descriptors if any(t["descriptor"] == d for t in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.3 * len(groups) + 1.8), sharey=True, layout="constrained")
    for ax, key, qkey, title in ((axes[0], "crude", "q", "crude"), (axes[1], "mh", "q_mh", "within annotators (MH)")):
        m = np.full((len(groups), len(descs)), np.nan)
        sig = np.zeros_like(m, dtype=bool)
        for t in rows:
            i, j = groups.index(t["group"]), descs.index(t["descriptor"])
            rr = t[key]["rr"]
            m[i, j] = math.log2(rr) if 0 < rr < math.inf else np.nan
            sig[i, j] = t[qkey] < 0.05
        im = ax.imshow(np.clip(m, -2, 2), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
        for i, j in zip(*np.nonzero(sig), strict=True):
            ax.text(j, i, "*", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(descs)), descs, rotation=35, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    axes[0].set_yticks(range(len(groups)), [labels.get(g, g) for g in groups], fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.8, label="log2 risk ratio vs rest (* q<0.05)")
    fig.suptitle(f"How {grouping} groups are described", fontsize=10)
    return _png(fig)


def annotator_heatmap(profiles: list[dict], descriptors: dict[str, Any]) -> bytes:
    names = list(descriptors)
    m = np.array([[p["descriptors"][d]["rate"] * 100 for d in names] for p in profiles])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(profiles) + 1.5), layout="constrained")
    im = ax.imshow(m, cmap="viridis", aspect="auto", vmin=0, vmax=100)
    for i, p in enumerate(profiles):
        for j, d in enumerate(names):
            e = p["descriptors"][d]
            ax.text(
                j,
                i,
                f"{m[i, j]:.0f}{'*' if e.get('significant') else ''}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if m[i, j] < 60 else "black",
            )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(profiles)), [f"annotator {p['author_id']} ({p['clips']})" for p in profiles], fontsize=8)
    fig.colorbar(im, ax=ax, label="% of the annotator's captions (* differs from the others, q<0.05)")
    ax.set_title("Annotator profiles", fontsize=10)
    return _png(fig)


def survival_bars(rows: list[dict], overall: float, labels: dict[str, str], grouping: str) -> bytes:
    rows = [r for r in rows if r["survived"] + r["lost"] > 0][::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.2, 0.3 * len(rows) + 1.4)), layout="constrained")
    rate = np.array([r["rate"] for r in rows]) * 100
    lo = np.maximum(rate - np.array([r["ci"][0] for r in rows]) * 100, 0)
    hi = np.maximum(np.array([r["ci"][1] for r in rows]) * 100 - rate, 0)
    colours = [SOUTH if r.get("significant") else NORTH for r in rows]
    ax.barh([labels.get(r["group"], r["group"]) for r in rows], rate, xerr=[lo, hi], color=colours, capsize=2)
    ax.axvline(overall * 100, color="black", lw=1, ls="--", label=f"overall {overall * 100:.1f}%")
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of clips that survived download (95% CI; orange: differs from the rest, q<0.05)")
    ax.set_title(f"Survival by {grouping}", fontsize=10)
    ax.legend(fontsize=7)
    ax.tick_params(axis="y", labelsize=8)
    return _png(fig)


def weights_bars(before: dict[str, float], after: dict[str, float], labels: dict[str, str], grouping: str) -> bytes:
    groups = sorted(before, key=lambda g: -before[g])[::-1]
    y = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(7, max(2.2, 0.32 * len(groups) + 1.4)), layout="constrained")
    ax.barh(y + 0.2, [before[g] * 100 for g in groups], height=0.4, color=GREY, label="unweighted")
    ax.barh(y - 0.2, [after.get(g, 0) * 100 for g in groups], height=0.4, color=NORTH, label="weighted")
    ax.set_yticks(y, [labels.get(g, g) for g in groups], fontsize=8)
    ax.set_xlabel("% of sampling mass (a clip counts in each of its groups)")
    ax.set_title(f"Effective {grouping} distribution after rebalancing", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)


def _ratio_axis(ax) -> None:
    """Log scale with plain ratio ticks (0.25, 0.5, 1, 2, ...) instead of powers of ten."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.autoscale_view()
    lo, hi = ax.get_xlim()
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def forest(tests: list[dict], labels: dict[str, dict[str, str]], descriptors: dict[str, Any]) -> bytes:
    """Crude against annotator-adjusted (Mantel-Haenszel) risk ratios with 95% CIs, one pair per row."""
    rows = tests[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.36 * len(rows) + 1.4), layout="constrained")
    y = np.arange(len(rows), dtype=float)
    for key, offset, colour, name in (("crude", 0.14, GREY, "crude"), ("mh", -0.14, NORTH, "within annotators (MH)")):
        est = np.array([t[key]["rr"] for t in rows])
        lo = np.array([t[key]["rr_ci"][0] for t in rows])
        hi = np.array([t[key]["rr_ci"][1] for t in rows])
        lo, hi = np.where(lo > 0, lo, est), np.where(np.isfinite(hi), hi, est)
        ax.errorbar(est, y + offset, xerr=[est - lo, hi - est], fmt="o", color=colour, ms=4, capsize=2, lw=1,
                    label=name)
    ax.axvline(1.0, color="black", lw=1, ls="--")
    _ratio_axis(ax)
    names = [
        f"{labels.get(t['grouping'], {}).get(t['group'], t['group'])[:28]} x {t['descriptor']}"
        + (" (confounded)" if t.get("conclusion_changes") else "")
        for t in rows
    ]
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlabel("risk ratio vs the rest of the clips (95% CI, log scale)")
    ax.set_title("Crude vs annotator-adjusted risk ratios, top group x descriptor pairs", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def rule_comparison(region_rule: dict[str, Any], reference: float | None) -> bytes:
    """Global South share overall and per genre under each region-evidence rule, with 95% CIs."""
    genres = [g for g in region_rule["by_genre"] if min(g[r]["specified"] for r in region_rule["compared"]) >= 10]
    labels = ["All clips", *(g["label"] for g in genres)][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(labels) + 1.5), layout="constrained")
    y = np.arange(len(labels), dtype=float)
    for k, (rule, colour) in enumerate(zip(region_rule["compared"], (SOUTH, NORTH), strict=False)):
        heads = [region_rule["rules"][rule]["headline"], *(g[rule] for g in genres)][::-1]
        est = np.array([h["share"] for h in heads]) * 100
        lo = est - np.array([h["ci"][0] for h in heads]) * 100
        hi = np.array([h["ci"][1] for h in heads]) * 100 - est
        ax.errorbar(est, y + (0.15 - 0.3 * k), xerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="o", color=colour,
                    ms=4, capsize=2, lw=1, label=f"{rule} evidence")
    if reference:
        ax.axvline(reference * 100, color="black", ls="--", lw=1, label="world population")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of clips with region evidence that carry Global South evidence (95% CI)")
    ax.set_title("The headline under each region-evidence rule, overall and per genre", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def chain_panels(chain: dict[str, Any], grouping: str) -> bytes:
    """One row per group, one panel per link of the chain that ran: estimate, 95% CI, orange when flagged."""
    groups = chain["groups"][grouping]
    labels = chain["labels"].get(grouping, {})
    cols = [c for c in chain["columns"] if c["status"] == "ok" and c["cells"].get(grouping)]
    if not cols or not groups:
        fig, ax = plt.subplots(figsize=(7, 1.2))
        ax.text(0.5, 0.5, f"{grouping}: no link of the chain has values", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    fig, axes = plt.subplots(
        1, len(cols), figsize=(max(6.0, 2.0 + 2.2 * len(cols)), 0.26 * len(groups) + 1.5), sharey=True,
        layout="constrained",
        squeeze=False,
    )
    y = np.arange(len(groups))[::-1]
    for ax, col in zip(axes[0], cols, strict=True):
        cells = col["cells"][grouping]
        for yi, g in zip(y, groups, strict=True):
            cell = cells.get(g)
            if cell is None:
                continue
            v = cell["value"]
            ci = cell.get("ci")
            colour = SOUTH if cell.get("flag") else NORTH
            if ci:
                ax.plot([ci[0], ci[1]], [yi, yi], color="#444", lw=1)
            ax.plot([v], [yi], "o", color=colour, ms=4)
        if col.get("overall") is not None:
            ax.axvline(col["overall"], color="black", ls="--", lw=0.8)
        better = {True: " (higher is better)", False: " (lower is better)"}.get(col["higher_is_better"], "")
        ax.set_title(col["title"] + better, fontsize=7, wrap=True)
        ax.tick_params(axis="x", labelsize=7)
    axes[0][0].set_yticks(y, [labels.get(g, g)[:30] for g in groups], fontsize=7)
    fig.suptitle(f"The chain by {grouping}", fontsize=9)
    return _png(fig)
