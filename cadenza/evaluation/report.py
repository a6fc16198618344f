"""report.html for `cadenza evaluate`: key numbers, plots, per-group tables, audio players."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.common.plotting import cell, pyplot
from cadenza.evaluation import token_metrics as tm
from cadenza.evaluation.report_metrics import group_gain_cells, sections


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
