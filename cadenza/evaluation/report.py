"""report.html for `cadenza evaluate`: key numbers, plots, per-group tables, audio players, and the sections for
caption gain, KAD/FD against the floor, adherence and mainstream pull."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.common.plotting import cell, pyplot
from cadenza.evaluation import token_metrics as tm

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


def plot_nll(out: Path, nll: dict[str, Any]) -> str:
    plt = pyplot()
    names = ["semantic"] + [f"acoustic cb{k}" for k in range(len(nll.get("nll_acoustic_per_codebook", [])))]
    vals = [nll.get("nll_semantic", float("nan"))] + list(nll.get("nll_acoustic_per_codebook", []))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(names, vals, color=["tab:blue"] + ["tab:orange"] * (len(vals) - 1))
    ax.set(ylabel="held-out NLL (nats/token)", title="Held-out NLL per stage and codebook")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(out / "nll_per_codebook.png", dpi=80)
    plt.close(fig)
    return "nll_per_codebook.png"


def plot_histograms(out: Path, gen: list[dict], ref: list[dict], vocab: int) -> str:
    plt = pyplot()
    hg = tm.histogram([g["semantic"] for g in gen], vocab)
    hr = tm.histogram([r["semantic"] for r in ref], vocab)
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(vocab)
    ax.step(x, hr / max(hr.sum(), 1), where="mid", label="held-out")
    ax.step(x, hg / max(hg.sum(), 1), where="mid", label="generated")
    ax.set(xlabel="semantic token", ylabel="frequency", title="Semantic token histogram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "semantic_histogram.png", dpi=80)
    plt.close(fig)
    return "semantic_histogram.png"


def plot_groups(out: Path, grouping: str, table: dict[str, Any]) -> str:
    plt = pyplot()
    groups = list(table)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(groups) + 2), 3.5))
    x = np.arange(len(groups))
    ax.bar(x - 0.2, [table[g]["nll_semantic"] for g in groups], 0.4, label="semantic")
    ax.bar(x + 0.2, [table[g]["nll_acoustic"] for g in groups], 0.4, label="acoustic")
    ax.set_xticks(x, groups, rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="held-out NLL", title=f"Held-out NLL by {grouping}")
    ax.legend()
    fig.tight_layout()
    name = f"nll_by_{grouping}.png"
    fig.savefig(out / name, dpi=80)
    plt.close(fig)
    return name


def _group_table(grouping: str, table: dict[str, Any]) -> str:
    rows = []
    for g, r in table.items():
        gm = r.get("generated") or {}
        sem = gm.get("semantic", {})
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{cell(v)}</td>"
                for v in (
                    g,
                    r["clips_heldout"],
                    r["nll_semantic"],
                    r["nll_acoustic"],
                    gm.get("clips", 0),
                    sem.get("js_divergence", float("nan")),
                    (sem.get("repetition_generated") or {}).get("repeated_ngram_fraction", float("nan")),
                    gm.get("frechet_audio_feature_distance", float("nan")),
                    (gm.get("memorization_generated") or {}).get("train_ngram_match_fraction", float("nan")),
                )
            )
            + "".join(group_gain_cells(r))
            + "</tr>"
        )
    head = (
        "<tr><th>group</th><th>held-out clips</th><th>NLL semantic</th><th>NLL acoustic</th>"
        "<th>generated</th><th>JS semantic</th><th>repeated n-grams</th><th>Frechet features</th>"
        "<th>train n-gram match</th><th>caption gain semantic [95% CI]</th>"
        "<th>caption gain acoustic [95% CI]</th><th>adherence [95% CI]</th><th>pulled to the mainstream</th></tr>"
    )
    return f"<h3>{html.escape(grouping)}</h3><table>{head}{''.join(rows)}</table>"


def write_report(out: Path, metrics: dict[str, Any], gen: list[dict], ref: list[dict], spec, wavs: list[dict]) -> None:
    nll = metrics["nll"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>cadenza evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head><body>",
        f"<h1>Evaluation of {html.escape(metrics['run'])} (step {metrics['step']})</h1>",
        "<p style='background:#fee;border:1px solid #c00;padding:6px'><b>Random-weight codec:</b> these tokens "
        "come from a randomly initialised EnCodec (tests and the demo only); the audio is not meaningful.</p>"
        if metrics.get("random_weights") else "",
        f"<p>Held-out: {html.escape(metrics['heldout'])}; window {metrics['seconds']} s; "
        f"{nll.get('clips', 0)} held-out clips; data problems: {cell(metrics['data'])}</p>",
        "<h2>Held-out likelihood</h2><table>",
        *(f"<tr><td>{k}</td><td>{cell(v)}</td></tr>" for k, v in nll.items()),
        "</table>",
        f"<img src='{plot_nll(out, nll)}'>",
        *sections(out, metrics),
    ]
    g = metrics.get("generated")
    if g:
        sem = g["semantic"]
        rep_g, rep_h = sem["repetition_generated"], sem["repetition_heldout"]

        def pair(a: Any, b: Any) -> str:
            return f"{cell(a)} / {cell(b)}"

        rows = {
            "generated clips": g["clips"],
            "semantic JS divergence (generated vs held-out histograms)": sem["js_divergence"],
            "semantic KL(held-out || generated)": sem["kl_heldout_to_generated"],
            "semantic codebook perplexity, generated / held-out": pair(
                sem["usage_generated"]["perplexity"], sem["usage_heldout"]["perplexity"]
            ),
            "repeated n-gram fraction, generated / held-out": pair(
                rep_g["repeated_ngram_fraction"], rep_h["repeated_ngram_fraction"]
            ),
            "distinct n-gram fraction across clips, generated / held-out": pair(
                rep_g["distinct_ngram_fraction"], rep_h["distinct_ngram_fraction"]
            ),
            f"Frechet distance, unscaled {metrics.get('embeddings', 'mfcc')} features, vs the prompts' clips": g.get(
                "frechet_audio_feature_distance", float("nan")
            ),
        }
        mem = g.get("memorization_generated")
        if mem:
            base = g["memorization_heldout_baseline"]
            rows[f"training {mem['ngram']}-gram match fraction, generated / held-out baseline"] = (
                f"{cell(mem['train_ngram_match_fraction'])} / {cell(base['train_ngram_match_fraction'])}"
            )
        for k, cb in enumerate(g["acoustic_per_codebook"]):
            rows[f"acoustic cb{k}: JS divergence / usage generated / usage held-out"] = (
                f"{cell(cb['js_divergence'])} / {cell(cb['usage_generated']['used_fraction'])} / "
                f"{cell(cb['usage_heldout']['used_fraction'])}"
            )
        parts += [
            "<h2>Generation</h2><table>",
            *(f"<tr><td>{k}</td><td>{cell(v)}</td></tr>" for k, v in rows.items()),
            "</table>",
            f"<img src='{plot_histograms(out, gen, ref, spec.semantic_vocab)}'>",
        ]
    for grouping, table in (metrics.get("by_group") or {}).items():
        if len(table) == 1 and "unassigned" in table:
            continue
        parts += [_group_table(grouping, table), f"<img src='{plot_groups(out, grouping, table)}'>"]
    if wavs:
        parts.append("<h2>Audio</h2><table><tr><th>clip</th><th>kind</th><th>audio</th><th>spectrogram</th></tr>")
        for w in wavs:
            parts.append(
                f"<tr><td>{html.escape(w['key'])}</td><td>{w['kind']}</td>"
                f"<td><audio controls src='wavs/{w['wav']}'></audio></td>"
                f"<td><img height=90 src='wavs/{w['png']}'></td></tr>"
            )
        parts.append("</table>")
    # lets a headless browser (the report's browser test) say whether every plot decoded
    parts.append(
        "<script>window.addEventListener('load', function () { var imgs = Array.from(document.images);"
        " document.documentElement.setAttribute('data-images', String(imgs.length));"
        " document.documentElement.setAttribute('data-images-ok', String(imgs.every(function (i) {"
        " return i.complete && i.naturalWidth > 0; }))); });</script>"
    )
    parts.append("</body></html>")
    (out / "report.html").write_text("\n".join(parts))
