"""Write the audit's report.html (self-contained), report.md and PNG plots.

METRICS_SCHEMA documents metrics.json (schema_version 1). Rates and shares are fractions in [0, 1];
every CI is a 95% [low, high] pair; "q" values are Benjamini-Hochberg adjusted p-values.
"""

from __future__ import annotations

import random
from pathlib import Path

from cadenza.audit.groupings import GROUPINGS
from cadenza.audit.ranking import ROLLUP_LABELS, forest_tests
from cadenza.audit.report_html import CSS as _CSS
from cadenza.audit.report_html import ERROR_JS, IMAGES_CHECK_JS, SORT_JS
from cadenza.audit.report_html import esc as _esc
from cadenza.audit.report_html import figure as _figure
from cadenza.audit.report_html import table as _table
from cadenza.audit.report_summary import appendix_section, rule_section, summary_section
from cadenza.audit.stats import pct as _pct
from cadenza.audit.stats import pct_ci
from cadenza.audit.taxonomy import Assignment, Taxonomy

METRICS_SCHEMA = """
schema_version: 1
clips: number of valid clips audited
source: {csv, rows_read, valid, rejected, rejected_by_reason, ontology, labels_used, taxonomy, survival_source}
config: the AuditConfig
groupings: {grouping: {description, groups: {group: label}}}
coverage: {grouping (region|genre|instrument|language|vocal_gender|rollup):
    {clips, specified, accounted, multi_group_clips,
     rows: [{group, label, count, share, ci, share_of_specified, ci_of_specified}],
     by_split: {balanced|audioset_eval|audioset_train: {clips, specified, rows}},
     by_annotator: {author_id: {clips, specified, rows}}}}
rollup: {counts: {global_north, global_south, mixed, unspecified}, specified, global_south_any_share,
         global_south_any_ci, global_north_only_share, global_north_only_ci, reference_share: {global_south}}
description: {descriptors: {name: {label, kind, count, rate, not_for, [field, median, mean]}},
              authors: [author_id],
              tests: [{grouping, group, descriptor, n_group,
                       crude: {a, b, c, d, rate_in, rate_rest, rr, rr_ci, odds_ratio, or_ci, p, test},
                       mh: {rr, rr_ci, odds_ratio, or_ci, chi2, p, strata_used}, q, q_mh,
                       significant, significant_mh, conclusion_changes,
                       driver: null | {author_id, rr_without, rate_annotator, rate_others, share_of_group,
                                       share_of_all}}]}
numeric_by_group: {grouping: {group: {n, caption_words_mean, aspect_count_mean}}}
annotators: {profiles: [{author_id, clips, caption_words_mean, aspect_count_mean,
                         descriptors: {name: {rate, rate_others, rr, rr_ci, p, q, significant}}}]}
survival: null | {kind, source, counts: {survived, lost, pending, unresolved}, overall_rate, overall_ci,
                  lost_by_category, pending_by_category, unresolved_by_category, session (the ingest manifest's:
                  vantage, yt_dlp, js_runtime, pot_provider, ...), unknown_keys, manifest,
                  by_grouping: {grouping: [{group, clips, survived, lost, pending, unresolved, rate, ci,
                  lost_by_category, [rate_rest, ratio_to_overall, ratio_ci, p, test, q, significant]}]}}
weights: {grouping, cap, min, max, effective_sample_size, shares_before, shares_after, balance_annotators,
          annotator_shares_before, annotator_shares_after, file}
region_rule: {rule, rule_text, compared: [explicit, both], clips_with_origin_evidence,
              clips_with_only_origin_evidence,
              rules: {rule: {text, headline: {specified, global_south_any, share, ci}, rollup_counts,
                             region: {group: {label, rollup, count, share_of_specified, ci_of_specified}}}},
              moving_terms: [{family, label, clips, terms, share_added_alone, delta_added_alone,
                              share_removed_alone, delta_removed_alone}],
              by_genre: [{genre, label, clips, explicit: {specified, share, ci, ...}, both: {...}}]}
findings: [{kind, severity (alert|info), headline (bool: ranked), text, numbers, score (null unless an alert),
            rank (1..10 or null), [ranked_by: {ratio, ci, clips}], [sentence, picture: {rows, ref, ref_label,
            xlabel, log}], [grouping, groups, group, author_id, direction]}]
tests: {count, alpha, correction}
timing_s: {analysis, total}
"""

def make_plots(metrics: dict, taxonomy: Taxonomy) -> dict[str, bytes]:
    from cadenza.audit import plots

    out: dict[str, bytes] = {}
    region_colour = {
        g: plots.SOUTH if info.get("rollup") == "global_south" else plots.NORTH
        for g, info in taxonomy.groupings["region"]["groups"].items()
    }
    out["rollup.png"] = plots.rollup_bar(metrics["rollup"])
    for g in GROUPINGS:
        out[f"coverage_{g}.png"] = plots.coverage_bars(
            metrics["coverage"][g], f"Coverage by {g}", region_colour if g == "region" else None
        )
    for g in ("region", "genre"):
        png = plots.rr_heatmap(
            metrics["description"]["tests"], g, metrics["groupings"][g]["groups"], metrics["description"]["descriptors"]
        )
        if png:
            out[f"description_{g}.png"] = png
    out["annotators.png"] = plots.annotator_heatmap(
        metrics["annotators"]["profiles"], metrics["description"]["descriptors"]
    )
    if metrics.get("survival"):
        out["survival_region.png"] = plots.survival_bars(
            metrics["survival"]["by_grouping"]["region"],
            metrics["survival"]["overall_rate"],
            metrics["groupings"]["region"]["groups"],
            "region",
        )
    rule = metrics.get("region_rule")
    if rule:
        out["region_rule.png"] = plots.rule_comparison(rule, metrics["rollup"]["reference_share"].get("global_south"))
    pairs = forest_tests(metrics)
    if pairs:
        out["forest.png"] = plots.forest(
            pairs,
            {**{g: v["groups"] for g, v in metrics["groupings"].items()}, "rollup": ROLLUP_LABELS},
            metrics["description"]["descriptors"],
        )
    w = metrics["weights"]
    out["weights.png"] = plots.weights_bars(
        w["shares_before"], w["shares_after"], metrics["groupings"][w["grouping"]]["groups"], w["grouping"]
    )
    return out


def _coverage_section(metrics: dict) -> str:
    parts = []
    for g in (*GROUPINGS, "rollup"):
        cov = metrics["coverage"][g]
        splits = cov["by_split"]
        rows = []
        for r in cov["rows"]:
            split_shares = []
            for s in splits.values():
                sr = next(x for x in s["rows"] if x["group"] == r["group"])
                split_shares.append(_pct(sr["share"]))
            rows.append(
                [r["label"], r["count"], _pct(r["share"]), pct_ci(r['ci']), *split_shares]
            )
        parts.append(
            f"<h3>{_esc(g)}</h3><p class=small>{cov['clips']} clips, {cov['specified']} with evidence, "
            f"{cov['multi_group_clips']} in more than one group, {cov['accounted']} accounted for.</p>"
        )
        parts.append(_table(["group", "clips", "share", "95% CI", *(f"share in {s}" for s in splits)], rows))
    return "".join(parts)


def _description_section(metrics: dict) -> str:
    tests = sorted(metrics["description"]["tests"], key=lambda t: t["q"])
    rows = [
        [
            f"{t['grouping']}:{t['group']}",
            t["descriptor"],
            t["n_group"],
            _pct(t["crude"]["rate_in"]),
            _pct(t["crude"]["rate_rest"]),
            f"{t['crude']['rr']:.2f}",
            f"{t['q']:.2g}",
            f"{t['mh']['rr']:.2f}",
            f"{t['q_mh']:.2g}",
            "yes" if t["conclusion_changes"] else "",
        ]
        for t in tests
        if t["significant"] or t["significant_mh"]
    ][:150]
    desc = metrics["description"]["descriptors"]
    fam = _table(
        ["family", "what", "clips", "rate"], [[k, v["label"], v["count"], _pct(v["rate"])] for k, v in desc.items()]
    )
    return (
        fam
        + (
            f"<p class=small>{len(tests)} group x descriptor tests; showing those significant crude or within "
            f"annotators (at most 150).</p>"
        )
        + _table(
            [
                "group",
                "descriptor",
                "clips",
                "rate in group",
                "rate in rest",
                "crude RR",
                "q",
                "MH RR",
                "q (MH)",
                "conclusion changes",
            ],
            rows,
        )
    )


def _annotator_section(metrics: dict) -> str:
    names = list(metrics["description"]["descriptors"])
    rows = [
        [
            p["author_id"],
            p["clips"],
            f"{p['caption_words_mean']:.0f}",
            f"{p['aspect_count_mean']:.1f}",
            *(_pct(p["descriptors"][d]["rate"]) + ("*" if p["descriptors"][d]["significant"] else "") for d in names),
        ]
        for p in metrics["annotators"]["profiles"]
    ]
    by_annotator = metrics["coverage"]["rollup"]["by_annotator"]
    order = ("global_north", "global_south", "mixed", "unspecified")
    seen = []
    for author, table in by_annotator.items():
        shares = {r["group"]: r["share"] for r in table["rows"]}
        seen.append([author, table["clips"], *(_pct(shares.get(g, 0.0)) for g in order)])
    return (
        _table(["annotator", "clips", "words/caption", "aspects", *names], rows)
        + "<p class=small>* differs from the other annotators (BH q&lt;alpha).</p>"
        + "<h3>What each annotator captioned (region roll-up)</h3>"
        + _table(["annotator", "clips", "Global North", "Global South", "both", "unspecified"], seen)
        + "<p class=small>Per-annotator coverage of every grouping is in metrics.json (coverage.*.by_annotator).</p>"
    )


def _survival_scope(s: dict) -> str:
    """What the rates mean: only clip-side losses count, and where the downloads ran."""
    counts = s["counts"]
    text = (
        "Only failures that blame the clip (removed, private, geo-blocked, age-restricted, members-only, "
        f"not found, not audio, too short) count as lost. {counts.get('pending', 0)} clips are pending "
        f"(not fetched yet, or refused for the downloading session: {_esc(s.get('pending_by_category') or {})}) "
        f"and {counts.get('unresolved', 0)} unresolved; both are left out of the rates."
    )
    session = s.get("session")
    if session:
        text += (
            f" Downloads ran from vantage {_esc(session.get('vantage') or 'not recorded')} with yt-dlp "
            f"{_esc(session.get('yt_dlp'))}, JS runtime {_esc(session.get('js_runtime') or 'none')}, PO token "
            f"provider {_esc(session.get('pot_provider') or 'none')}: geo-blocking is as seen from there."
        )
    return f"<p>{text}</p>"


def _survival_section(metrics: dict) -> str:
    s = metrics.get("survival")
    if not s:
        return "<p>No survival input: run with <code>--ingest DIR</code> or <code>--available FILE</code>.</p>"
    parts = [
        f"<p>Source: {_esc(s['kind'])} <code>{_esc(s['source'])}</code>. Counts: {_esc(s['counts'])}. "
        f"Lost by reason: {_esc(s['lost_by_category'])}.</p>",
        _survival_scope(s),
    ]
    for g in ("region", "rollup", "genre"):
        rows = [
            [
                r["group"],
                r["clips"],
                r["survived"],
                r["lost"],
                r["pending"],
                _pct(r["rate"]),
                f"{r['ratio_to_overall']:.2f}" if "ratio_to_overall" in r else "",
                f"{r['q']:.2g}" if "q" in r else "",
                r["lost_by_category"],
            ]
            for r in s["by_grouping"][g]
        ]
        parts.append(
            f"<h3>{_esc(g)}</h3>"
            + _table(
                [
                    "group",
                    "clips",
                    "survived",
                    "lost",
                    "pending",
                    "survival",
                    "ratio to overall",
                    "q",
                    "lost by reason",
                ],
                rows,
            )
        )
    return "".join(parts)


def _evidence_examples(assignments: list[Assignment], n: int = 8) -> str:
    rng = random.Random(0)
    picks = [a for a in assignments if a.groups["region"] != ["unspecified"]]
    rows = []
    for a in rng.sample(picks, min(n, len(picks))):
        ev = "; ".join(f"{e.grouping}:{e.group} <- {e.source} '{e.text}'" for e in a.evidence if e.grouping == "region")
        rows.append([a.clip.key, a.rollup, ev, a.clip.caption[:220]])
    return _table(["clip", "roll-up", "region evidence", "caption"], rows)


def _datasheet(metrics: dict) -> str:
    src = metrics["source"]
    cov = metrics["coverage"]
    splits = {s: cov["region"]["by_split"][s]["clips"] for s in cov["region"]["by_split"]}
    authors = metrics["description"]["authors"]
    surv = metrics.get("survival")
    unspecified = {g: _pct(1 - cov[g]["specified"] / cov[g]["clips"]) if cov[g]["clips"] else "-" for g in GROUPINGS}
    survival = f"measured from {_esc(surv['kind'])} {_esc(surv['source'])}" if surv else "not measured in this run"
    labels = "were" if src["labels_used"] else "were NOT (no --ontology given)"
    return f"""
<h3>Composition</h3><p>{metrics["clips"]} ten-second clips from YouTube, each with a free-text caption and an
aspect list written by one of {len(authors)} annotators (ids {_esc(authors)}), plus AudioSet labels.
Splits: {_esc(splits)}. Cultural groups are inferred only from labels and text (region of origin of the tradition,
genre, instrument family, language, voice). Share of clips with no evidence, per grouping: {_esc(unspecified)}.</p>
<h3>Collection process</h3><p>Clips are AudioSet segments of YouTube videos, so availability decays over time;
captions were written by professional musicians for MusicLM's evaluation. Annotators' habits differ (see the
annotator profiles), so every association is also estimated within annotators. Download survival: {survival}.</p>
<h3>Preprocessing</h3><p>The CSV was validated: {src["rows_read"]} rows read, {src["valid"]} valid,
{src["rejected"]} rejected ({_esc(src["rejected_by_reason"])}). AudioSet labels {labels} mapped through the
ontology's ancestor closure; text was matched with the taxonomy <code>{_esc(src["taxonomy"])}</code> (whole words
and phrases, negated mentions skipped); every assignment keeps its evidence in <code>assignments.jsonl</code>.</p>
<h3>Uses</h3><p>Intended: training and evaluating text-to-music models knowing who is represented; breaking model
metrics down by group (<code>assignments.jsonl</code>); rebalancing with the weights file. Not intended: claims
about performers' identities, or treating the lexicon as complete: a clip without evidence is unknown, not Global
North. Models trained on this data will reflect the imbalances reported above.</p>
"""


_PLACED = ("region_rule.png", "forest.png")  # shown in their own sections


def render_html(metrics: dict, pngs: dict[str, bytes], assignments: list[Assignment]) -> str:
    alerts = [f for f in metrics["findings"] if f["severity"] == "alert"]
    infos = [f for f in metrics["findings"] if f["severity"] != "alert"]
    captions = {
        "rollup.png": "share of clips whose region evidence is Global North, Global South, both, or absent",
        "weights.png": "group shares of sampling mass before and after rebalancing weights",
        "annotators.png": "how often each annotator uses each descriptor family",
        "survival_region.png": "share of each region's clips that survived download",
    }
    figs = "".join(
        _figure(name, png, captions.get(name, name.removesuffix(".png").replace("_", " ")))
        for name, png in pngs.items()
        if name not in _PLACED
    )
    w = metrics["weights"]
    wrows = [[g, _pct(w["shares_before"][g]), _pct(w["shares_after"].get(g, 0))] for g in w["shares_before"]]
    context = "<ul>" + "".join(f"<li>{_esc(f['text'])}</li>" for f in infos) + "</ul>"
    rule = metrics.get("region_rule") or {}
    cfg = metrics["config"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cadenza cultural-bias audit</title>
<style>{_CSS}</style>
<script>{ERROR_JS}</script></head><body>
<h1>Cultural-bias audit of {_esc(metrics["source"]["csv"])}</h1>
<p class=small>{metrics["clips"]} clips; {len(alerts)} findings significant (Benjamini-Hochberg, alpha {cfg["alpha"]});
region evidence rule: <b>{_esc(rule.get("rule", "both"))}</b>; minimum group size for any test:
{cfg.get("min_group")} clips; region = region of origin of the musical tradition evidenced, never the performers.</p>
<h2 id="findings">Findings: the ones that matter most, ranked</h2>{summary_section(metrics, pngs)}
<h2 id="region-rule">The headline under both region-evidence rules</h2>{rule_section(metrics, pngs)}
<h2 id="context">Context</h2>{context}
<h2 id="plots">Plots</h2>{figs}
<h2 id="coverage">Coverage</h2>{_coverage_section(metrics)}
<h2 id="description">Description</h2>{_description_section(metrics)}
<h2 id="annotators">Annotators</h2>{_annotator_section(metrics)}
<h2 id="survival">Survival</h2>{_survival_section(metrics)}
<h2 id="weights">Rebalancing</h2><p>Grouping {_esc(w["grouping"])}, cap {w["cap"]},
weights {w["min"]:.2f}-{w["max"]:.2f}, effective sample size {w["effective_sample_size"]:.0f}.
File: {_esc(w["file"] or "not written")}.</p>
{_table(["group", "unweighted", "weighted"], wrows)}
<h2 id="evidence">Why clips were counted (random examples)</h2>{_evidence_examples(assignments)}
<h2 id="appendix-all">Appendix: every finding</h2>{appendix_section(metrics)}
<h2 id="datasheet">Datasheet (after Gebru et al., "Datasheets for Datasets")</h2>{_datasheet(metrics)}
<script>{SORT_JS}{IMAGES_CHECK_JS}</script>
</body></html>
"""


def render_md(metrics: dict) -> str:
    alerts = [f for f in metrics["findings"] if f["severity"] == "alert"]
    infos = [f for f in metrics["findings"] if f["severity"] != "alert"]
    lines = [
        f"# Cultural-bias audit: {metrics['source']['csv']}",
        "",
        f"{metrics['clips']} clips, {len(alerts)} alerts. Full report: report.html; figures: metrics.json.",
        "",
        "## Summary (ranked)",
        "",
    ]
    lines += [f"{f['rank']}. {f['sentence']}" for f in metrics["findings"] if f.get("rank")] or ["- no alerts"]
    lines += ["", f"{len(alerts)} alerts in all: see report.html, or `findings` in metrics.json."]
    lines += ["", "## Context", ""] + [f"- {f['text']}" for f in infos]
    return "\n".join(lines) + "\n"


def write_reports(
    out: Path, metrics: dict, assignments: list[Assignment], taxonomy: Taxonomy, plots: bool = True
) -> None:
    pngs = make_plots(metrics, taxonomy) if plots else {}
    for name, png in pngs.items():
        (out / name).write_bytes(png)
    (out / "report.html").write_text(render_html(metrics, pngs, assignments), encoding="utf-8")
    (out / "report.md").write_text(render_md(metrics), encoding="utf-8")
