"""Plots and report.html for `cadenza codec eval`."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from cadenza.codec.losses import METRIC_DIRECTION
from cadenza.common.plotting import cell, pyplot

LABELS = {"log_mel_l1": "log-mel L1 (lower is better)", "stft_distance": "multi-res STFT distance (lower is better)",
          "si_snr": "SI-SNR dB (higher is better)"}


def plot_groups(out: Path, grouping: str, groups: dict[str, Any], overall: dict[str, Any], metric: str) -> str:
    """Mean and 95% CI per group, the overall mean as a line, groups significantly worse on `metric` in red."""
    plt = pyplot()
    names = sorted(groups, key=lambda g: groups[g][metric]["mean"])
    means = [groups[g][metric]["mean"] for g in names]
    lo = [m - groups[g][metric]["ci_low"] for g, m in zip(names, means, strict=True)]
    hi = [groups[g][metric]["ci_high"] - m for g, m in zip(names, means, strict=True)]
    colors = ["tab:red" if metric in groups[g].get("worse_on", ()) else "tab:blue" for g in names]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    ax.barh([f"{g} (n={groups[g]['n']})" for g in names], means, xerr=[lo, hi], color=colors, capsize=3)
    ax.axvline(overall[metric]["mean"], color="black", linestyle="--", linewidth=1, label="all clips")
    ax.set(xlabel=LABELS[metric], title=f"Codec reconstruction by {grouping} (red: significantly worse)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    name = f"codec_{metric}_by_{grouping}.png"
    fig.savefig(out / name, dpi=80)
    plt.close(fig)
    return name


def plot_codebooks(out: Path, overall: dict[str, Any]) -> str:
    plt = pyplot()
    levels = overall["codebooks"]["levels"]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.bar(range(len(levels)), [lv["entropy_bits"] for lv in levels], color="tab:green")
    ax.set(xlabel="RVQ level", ylabel="entropy (bits)", title="Codebook entropy per level")
    ax.set_xticks(range(len(levels)))
    fig.tight_layout()
    fig.savefig(out / "codec_codebooks.png", dpi=80)
    plt.close(fig)
    return "codec_codebooks.png"


def _ci(entry: dict[str, Any]) -> str:
    return f"{cell(entry['mean'])} [{cell(entry['ci_low'])}, {cell(entry['ci_high'])}]"


def group_rows(groups: dict[str, Any]) -> str:
    rows = []
    for name, e in sorted(groups.items()):
        worse = ", ".join(LABELS[m].split(" (")[0] for m in e.get("worse_on", []))
        flag = f"<b style='color:#b00'>worse: {html.escape(worse)}</b>" if e.get("flag") else ""
        q = "" if e.get("q") is None else cell(e["q"])
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{e['n']}</td>"
                    + "".join(f"<td>{_ci(e[m])}</td>" for m in METRIC_DIRECTION)
                    + f"<td>{cell(e['codebooks']['entropy_kbps'])}</td><td>{q}</td><td>{flag}</td></tr>")
    head = ("<tr><th>group</th><th>clips</th>" + "".join(f"<th>{LABELS[m]}</th>" for m in METRIC_DIRECTION)
            + "<th>entropy kbps</th><th>q (lowest)</th><th></th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def write_codec_report(out: Path, metrics: dict[str, Any]) -> list[str]:
    """PNG plots and a self-contained report.html; returns the plot file names."""
    overall = metrics["overall"]
    plots = [plot_codebooks(out, overall)]
    sections = []
    for grouping, groups in (metrics.get("by_group") or {}).items():
        # log-mel always; another distance where some group of this grouping is worse on it
        shown = ["log_mel_l1"] + [m for m in METRIC_DIRECTION if m != "log_mel_l1"
                                  and any(m in e.get("worse_on", ()) for e in groups.values())]
        names = [plot_groups(out, grouping, groups, overall, m) for m in shown]
        plots.extend(names)
        images = "".join(f"<img src='{n}'>" for n in names)
        sections.append(f"<h2>By {html.escape(grouping)}</h2>{images}{group_rows(groups)}")
    codec = metrics["codec"]
    banner = ("<p style='background:#b00;color:#fff;padding:8px'>RANDOM-WEIGHT CODEC: for tests only, its "
              "reconstructions are not meaningful</p>") if metrics.get("random_weights") else ""
    levels = "".join(f"<tr><td>{i}</td><td>{cell(lv['used'])}</td><td>{cell(lv['entropy_bits'])}</td>"
                     f"<td>{cell(lv['perplexity'])}</td></tr>" for i, lv in enumerate(overall["codebooks"]["levels"]))
    body = f"""<!doctype html><html><head><meta charset='utf-8'><title>cadenza codec evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} td,th{{border:1px solid #ccc;padding:3px 6px}}
table{{border-collapse:collapse;margin:8px 0}}</style></head><body>
<h1>Codec evaluation</h1>{banner}
<p>Codec <code>{html.escape(str(codec.get('dir')))}</code> ({html.escape(str(codec.get('name')))},
{codec.get('num_codebooks')} codebooks of {codec.get('vocab_size')}, {cell(metrics['bitrate_kbps'])} kbps nominal,
{cell(overall['codebooks']['entropy_kbps'])} kbps entropy-coded) on {metrics['clips']} clips of
<code>{html.escape(str(metrics['shards']))}</code>.</p>
<table><tr><th>metric</th><th>mean [95% CI]</th></tr>
{''.join(f"<tr><td>{LABELS[m]}</td><td>{_ci(overall[m])}</td></tr>" for m in METRIC_DIRECTION)}</table>
<h2>Codebooks</h2><img src='{plots[0]}'><table><tr><th>level</th><th>codes used</th><th>entropy (bits)</th>
<th>perplexity</th></tr>{levels}</table>
<p>Flag rule: {html.escape(metrics['flag_rule'])}.</p>
{''.join(sections)}
</body></html>"""
    (out / "report.html").write_text(body, encoding="utf-8")
    return plots
