"""The report's sections for caption gain, KAD/FD against the floor, adherence and mainstream pull."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from cadenza.common.plotting import cell, pyplot

# the plots' own colour: the browser test counts its pixels to know the plots rendered
GAIN_COLOUR = "#2a9d8f"
FLAG_COLOUR = "#d62728"


def _ci(d: dict[str, Any], key: str = "ci95") -> str:
    lo, hi = d.get(key) or (float("nan"), float("nan"))
    return f"[{cell(lo)}, {cell(hi)}]"


def _err(values: list[float], cis: list[list[float]]) -> list[list[float]]:
    """matplotlib's asymmetric error bars from CIs (NaN-safe, never negative)."""
    pairs = list(zip(values, cis, strict=True))
    lo = [max(0.0, v - c[0]) if math.isfinite(v) and math.isfinite(c[0]) else 0.0 for v, c in pairs]
    hi = [max(0.0, c[1] - v) if math.isfinite(v) and math.isfinite(c[1]) else 0.0 for v, c in pairs]
    return [lo, hi]


def _bars(out: Path, name: str, labels: list[str], rows: list[dict[str, Any]], value: str, title: str,
          ylabel: str, line: float | None = None, colours: list[str] | None = None) -> str:
    plt = pyplot()
    vals = [float(r.get(value, float("nan"))) for r in rows]
    cis = [list(r.get("ci95") or (float("nan"), float("nan"))) for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(labels) + 2), 3.2))
    ax.bar(labels, vals, yerr=_err(vals, cis), capsize=4, color=colours or GAIN_COLOUR)
    if line is not None:
        ax.axhline(line, color="black", linestyle="--", linewidth=1)
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(out / name, dpi=80)
    plt.close(fig)
    return name


def caption_gain_section(out: Path, cg: dict[str, Any]) -> list[str]:
    rows = [("semantic", cg["semantic"]), ("acoustic (all codebooks)", cg["acoustic"])]
    rows += [(f"acoustic cb{k}", r) for k, r in enumerate(cg.get("acoustic_per_codebook", []))]
    img = _bars(out, "caption_gain.png", [n for n, _ in rows], [r for _, r in rows], "gain",
                "Caption information gain (95% CI)", "nats/token", line=0.0)
    body = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{cell(r.get('nll_true', float('nan')))}</td>"
        f"<td>{cell(r.get('nll_mismatched', float('nan')))}</td><td><b>{cell(r['gain'])}</b></td><td>{_ci(r)}</td>"
        f"<td>{'yes' if r.get('excludes_zero') else 'no'}</td></tr>"
        for n, r in rows
    )
    return [
        "<h2>Caption information gain</h2>",
        f"<p>Held-out NLL with each clip's own caption against captions of other clips ({cg.get('clips', 0)} clips, "
        f"{cg.get('mismatched_draws_per_clip', 0)} mismatched captions each, "
        f"{cg.get('clips_with_other_group_caption', 0)} of them from another group). A model that ignores its "
        "text gains nothing; the CI is a paired bootstrap over clips.</p>",
        "<table><tr><th>stage</th><th>NLL true caption</th><th>NLL mismatched</th><th>gain (nats/token)</th>"
        f"<th>95% CI</th><th>CI excludes 0</th></tr>{body}</table>",
        f"<img src='{img}'>",
    ]


def distances_section(out: Path, d: dict[str, Any], embeddings: str) -> list[str]:
    if "skipped" in d:
        return ["<h2>Distribution distances</h2>", f"<p>Not measured: {html.escape(d['skipped'])}</p>"]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key in zip(axes, ("kad", "fd"), strict=True):
        rows = [d[key], d[f"{key}_floor"]]
        vals = [r["value"] for r in rows]
        ax.bar(["generated vs refs", "refs half vs half"], vals, yerr=_err(vals, [r["ci95"] for r in rows]),
               capsize=4, color=[GAIN_COLOUR, "#999999"])
        ax.set(title=key.upper(), ylabel="distance")
    fig.tight_layout()
    fig.savefig(out / "distances.png", dpi=80)
    plt.close(fig)
    rows = "".join(
        f"<tr><td>{key.upper()}</td><td><b>{cell(d[key]['value'])}</b></td><td>{_ci(d[key])}</td>"
        f"<td>{cell(d[key + '_floor']['value'])}</td><td>{_ci(d[key + '_floor'])}</td></tr>"
        for key in ("kad", "fd")
    )
    verdict = "above" if d.get("kad_above_floor") else "not distinguishable from"
    return [
        "<h2>Distribution distances</h2>",
        f"<p>{d['generated']} samples against {d['references']} held-out reconstructions, on {html.escape(embeddings)} "
        "embeddings standardised by the references' mean and std. The floor is the same distance between "
        "two random halves of the references: the best a model can show at this n. "
        f"KAD is {verdict} the floor (95% CIs).</p>",
        "<table><tr><th>metric</th><th>generated vs references</th><th>95% CI</th><th>reference floor</th>"
        f"<th>floor 95% range</th></tr>{rows}</table>",
        "<img src='distances.png'>",
    ]


def adherence_section(out: Path, a: dict[str, Any], tokens: dict[str, Any] | None = None) -> list[str]:
    if "skipped" in a:
        return ["<h2>Prompt adherence</h2>", f"<p>Not measured: {html.escape(a['skipped'])}</p>"]
    stage = ""
    if tokens and "skipped" not in tokens:
        stage = (f"<p>The same classifier on semantic-token histograms (the semantic stage alone, before the "
                 f"acoustic stage and the codec): accuracy {cell(tokens['accuracy'])} {_ci(tokens)}, "
                 f"{cell(tokens['ratio_to_chance'])}x chance.</p>")
    labels = ["all", *a["per_label"]]
    rows = [a, *a["per_label"].values()]
    img = _bars(out, "adherence.png", labels, rows, "accuracy", "Prompt adherence (95% CI; dashed: chance)",
                "accuracy", line=a["chance"])
    body = "".join(
        f"<tr><td>{html.escape(lab)}</td><td>{r['samples']}</td><td><b>{cell(r['accuracy'])}</b></td>"
        f"<td>{_ci(r)}</td></tr>"
        for lab, r in zip(labels, rows, strict=True)
    )
    cv = a.get("reference_accuracy_cv")
    return [
        "<h2>Prompt adherence</h2>",
        f"<p>A classifier fitted on the held-out reconstructions ({len(a['classes'])} labels; leave-one-out "
        f"accuracy on them: {cell(cv) if cv is not None else 'n/a'}) labels the samples generated from their "
        f"captions. Chance: {cell(a['chance'])}; accuracy {cell(a['accuracy'])} = "
        f"{cell(a['ratio_to_chance'])}x chance, "
        f"{'above' if a['above_chance'] else 'not clearly above'} it.</p>",
        stage,
        f"<table><tr><th>label</th><th>samples</th><th>accuracy</th><th>95% CI</th></tr>{body}</table>",
        f"<img src='{img}'>",
    ]


def mainstream_section(out: Path, p: dict[str, Any]) -> list[str]:
    rows = {k: v for k, v in p["labels"].items() if "skipped" not in v}
    if not rows:
        return ["<h2>Pull toward the mainstream</h2>", "<p>Not measured: no label has references of its own.</p>"]
    plt = pyplot()
    names = list(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2), 3.2))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [rows[n]["distance_own"] for n in names], 0.4, color=GAIN_COLOUR,
           label="to own references")
    ax.bar([i + 0.2 for i in x], [rows[n]["distance_rest"] for n in names], 0.4,
           color=[FLAG_COLOUR if rows[n]["flagged"] else "#999999" for n in names], label="to the rest")
    ax.set_xticks(list(x), names, rotation=30)
    ax.set(title="Samples: distance to own label vs rest (red: flagged)", ylabel="mean distance")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "mainstream_pull.png", dpi=80)
    plt.close(fig)
    body = "".join(
        f"<tr{' style=background:#fdd' if r['flagged'] else ''}><td>{html.escape(n)}</td><td>{r['samples']}</td>"
        f"<td>{cell(r['distance_own'])}</td><td>{cell(r['distance_rest'])}</td><td>{cell(r['pull_ratio'])}</td>"
        f"<td>{cell(r.get('reference_distance_own', float('nan')))} / "
        f"{cell(r.get('reference_distance_rest', float('nan')))}</td>"
        f"<td>{'FLAGGED' if r['flagged'] else ''}</td></tr>"
        for n, r in rows.items()
    )
    return [
        "<h2>Pull toward the mainstream</h2>",
        "<p>For each label's prompts: mean distance of its samples to its own held-out references and to all "
        "other references. Flagged: the samples sit nearer the rest of the data than their own label.</p>",
        "<table><tr><th>label</th><th>samples</th><th>to own</th><th>to rest</th><th>own / rest</th>"
        f"<th>references themselves: own / rest</th><th>flag</th></tr>{body}</table>",
        "<img src='mainstream_pull.png'>",
    ]


def sections(out: Path, metrics: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    if metrics.get("control", "none") != "none":
        parts.append(f"<p style='background:#ffd;padding:6px'><b>Validity control:</b> "
                     f"{html.escape(metrics['control'])} (not a normal evaluation).</p>")
    if metrics.get("caption_gain"):
        parts += caption_gain_section(out, metrics["caption_gain"])
    if metrics.get("distances"):
        parts += distances_section(out, metrics["distances"], metrics.get("embeddings", "mfcc"))
    if metrics.get("adherence"):
        parts += adherence_section(out, metrics["adherence"], metrics.get("adherence_semantic_tokens"))
    if metrics.get("mainstream_pull"):
        parts += mainstream_section(out, metrics["mainstream_pull"])
    return parts


def group_gain_cells(row: dict[str, Any]) -> list[str]:
    """Caption gain columns of a per-group table row."""
    cg = row.get("caption_gain") or {}
    cells = []
    for stage in ("semantic", "acoustic"):
        r = cg.get(stage) or {}
        cells.append(f"<td>{cell(r.get('gain', float('nan')))} {_ci(r)}</td>")
    adh, pull = row.get("adherence"), row.get("mainstream_pull") or {}
    cells.append(f"<td>{cell(adh['accuracy'])} {_ci(adh)}</td>" if adh else "<td></td>")
    cells.append("<td style='background:#fdd'>FLAGGED</td>" if pull.get("flagged") else
                 f"<td>{'no' if 'flagged' in pull else ''}</td>")
    return cells
