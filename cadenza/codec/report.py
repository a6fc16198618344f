"""Plots and report.html for `cadenza codec eval`."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from cadenza.codec.measure import METRICS, REFERENCES
from cadenza.common.plotting import cell, pyplot

LABELS = {"chroma_similarity": "chroma similarity (higher is better)",
          "flatness_ratio": "spectral flatness ratio (1 is the original's; above: noise added)",
          "f0_agreement": "f0 agreement (higher is better)",
          "log_mel_l1": "log-mel L1 (lower is better)", "stft_distance": "multi-res STFT distance (lower is better)",
          "si_snr": "SI-SNR dB (higher is better)"}
GROUP_METRICS = ("chroma_similarity", "flatness_ratio", "log_mel_l1", "stft_distance", "si_snr")
REFERENCE_NAMES = {"original": "original (ceiling)", "opus": "Opus", "shaped_noise": "shaped noise",
                   "another_clip": "another clip"}


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
                    + "".join(f"<td>{_ci(e[m])}</td>" for m in GROUP_METRICS)
                    + f"<td>{cell(e['references']['opus']['chroma_similarity']['mean'])}</td>"
                    + f"<td>{e.get('undecodable', 0)}</td>"
                    + f"<td>{cell(e['codebooks']['entropy_kbps'])}</td><td>{q}</td><td>{flag}</td></tr>")
    head = ("<tr><th>group</th><th>clips</th>" + "".join(f"<th>{LABELS[m]}</th>" for m in GROUP_METRICS)
            + "<th>Opus chroma similarity</th><th>could not be decoded</th>"
            + "<th>entropy kbps</th><th>q (lowest)</th><th></th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def write_codec_report(out: Path, metrics: dict[str, Any]) -> list[str]:
    """PNG plots and a self-contained report.html; returns the plot file names."""
    overall = metrics["overall"]
    plots = [plot_codebooks(out, overall)]
    sections = []
    for grouping, groups in (metrics.get("by_group") or {}).items():
        # chroma similarity and log-mel always; another distance where some group of this grouping is worse on it
        shown = ["chroma_similarity", "log_mel_l1"] + [m for m in ("stft_distance", "si_snr")
                                                       if any(m in e.get("worse_on", ()) for e in groups.values())]
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
{headline_html(metrics)}
{reference_table(metrics)}
{undecodable_html(metrics)}
<h2>Codebooks</h2><img src='{plots[0]}'><table><tr><th>level</th><th>codes used</th><th>entropy (bits)</th>
<th>perplexity</th></tr>{levels}</table>
<p>Flag rule: {html.escape(metrics['flag_rule'])}.</p>
{''.join(sections)}
</body></html>"""
    (out / "report.html").write_text(body, encoding="utf-8")
    return plots


def headline_html(metrics: dict[str, Any]) -> str:
    head = metrics.get("headline")
    if head is None:
        return ("<p style='background:#b00;color:#fff;padding:8px'>No headline: no metric ranked the references "
                f"{html.escape(metrics['validity']['order'])} on this run.</p>")
    return (f"<p style='font-size:1.2em'><b>Headline: {html.escape(LABELS[head['metric']])}</b>: codec "
            f"{cell(head['codec'])}, Opus {cell(head.get('opus'))}, shaped noise {cell(head.get('shaped_noise'))}, "
            f"another clip {cell(head.get('another_clip'))}, the original {cell(head.get('original'))}.</p>")


def _value(metric: str, summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("mean") is None:
        return "n/a" + (f" (not applicable: {summary['not_applicable']} clips)" if summary else "")
    text = _ci(summary)
    if metric == "flatness_ratio":
        text += f"; off by x{cell(summary['off_by'])}"
    if metric == "f0_agreement":
        text += f" ({summary['n']} clips; not applicable: {summary['not_applicable']})"
    return text


def reference_table(metrics: dict[str, Any]) -> str:
    """Every metric for the codec beside the references, and whether it ranks the references right."""
    checks = metrics["validity"]["metrics"]
    head = ("<tr><th>metric</th><th>codec</th>" + "".join(f"<th>{REFERENCE_NAMES[r]}</th>" for r in REFERENCES)
            + f"<th>ranks {html.escape(metrics['validity']['order'])}?</th></tr>")
    rows = []
    for m in METRICS:
        check = checks[m]
        verdict = ("n/a: " + html.escape(check["why"]) if check["passes"] is None else "passes" if check["passes"]
                   else f"<b style='color:#b00'>FAILS ({html.escape(check['why'])}): not a headline</b>")
        rows.append(f"<tr><td>{LABELS[m]}</td><td>{_value(m, metrics['overall'][m])}</td>"
                    + "".join(f"<td>{_value(m, metrics['references'][r].get(m))}</td>" for r in REFERENCES)
                    + f"<td>{verdict}</td></tr>")
    settings = metrics["reference_settings"]
    return (f"<table>{head}{''.join(rows)}</table><p>References on the same clips: Opus at "
            f"{cell(settings['opus_kbps'])} kbps; shaped noise: {html.escape(settings['shaped_noise'])}; another "
            f"clip: {html.escape(settings['another_clip'])}. f0 agreement: {html.escape(metrics['pitch']['note'])}. "
            f"Ranking values: {html.escape(metrics['validity']['rank_values_are'])}.</p>")


def undecodable_html(metrics: dict[str, Any]) -> str:
    lost = metrics["undecodable"]
    if not lost["count"]:
        return "<p>Every selected clip was decoded.</p>"
    rows = "".join(f"<tr><td><code>{html.escape(c['key'])}</code></td><td>{html.escape(c['reason'])}</td></tr>"
                   for c in lost["clips"])
    return (f"<h2>Clips that could not be decoded: {lost['count']}</h2><p>Selected but not evaluated; not in "
            f"any mean or group above.</p><table><tr><th>clip</th><th>why</th></tr>{rows}</table>")


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """What `cadenza codec eval` prints: the headline beside the references, the metrics that fail the order."""
    head, checks = metrics.get("headline"), metrics["validity"]["metrics"]
    refs = metrics["references"]
    if head:
        lines = [f"{metrics['clips']} clips: {head['metric']} {head['codec']:.3f} (Opus "
                 f"{metrics['reference_settings']['opus_kbps']:g} kbps {head.get('opus', float('nan')):.3f}, shaped "
                 f"noise {head.get('shaped_noise', float('nan')):.3f}, another clip "
                 f"{head.get('another_clip', float('nan')):.3f})"]
    else:
        lines = [f"{metrics['clips']} clips: no headline, no metric ranked {metrics['validity']['order']}"]
    flat = metrics["overall"]["flatness_ratio"]
    lines.append(f"flatness ratio {flat['mean']:.2f} (Opus {refs['opus']['flatness_ratio']['mean']:.2f}, "
                 f"shaped noise {refs['shaped_noise']['flatness_ratio']['mean']:.2f}), log-mel L1 "
                 f"{metrics['overall']['log_mel_l1']['mean']:.3f}, {metrics['bitrate_kbps']:.2f} kbps")
    failing = [f"{m} ({c['why']})" for m, c in checks.items() if c["passes"] is False]
    if failing:
        lines.append(f"fail {metrics['validity']['order']}, not a headline: " + "; ".join(failing))
    if metrics["undecodable"]["count"]:
        lines.append(f"{metrics['undecodable']['count']} selected clips could not be decoded (see report)")
    return lines
