"""The parts of report.html a reviewer reads first: the ranked summary, the region-rule comparison, and
the sortable appendix of every finding."""

from __future__ import annotations

from typing import Any

from cadenza.audit.ranking import SCORE_TEXT, SUMMARY_SCOPE
from cadenza.audit.report_html import esc as _esc
from cadenza.audit.report_html import estimate_svg
from cadenza.audit.report_html import figure as _figure
from cadenza.audit.report_html import table as _table
from cadenza.audit.stats import pct as _pct
from cadenza.audit.stats import pct_ci as _ci_text


def rule_section(metrics: dict, pngs: dict[str, bytes]) -> str:
    rule = metrics.get("region_rule")
    if not rule:
        return ""
    compared = rule["compared"]
    ref = metrics["rollup"]["reference_share"].get("global_south")
    head_rows = [
        [
            f"{r}{' (used in this report)' if r == rule['rule'] else ''}",
            rule["rules"][r]["text"],
            rule["rules"][r]["headline"]["specified"],
            _pct(rule["rules"][r]["headline"]["share"]),
            _ci_text(rule["rules"][r]["headline"]["ci"]),
        ]
        for r in compared
    ]
    parts = [
        f"<p>Region evidence is either <b>explicit</b> (a named culture, country, language, instrument or tradition) "
        f"or <b>genre origin</b> (a globalized genre such as rock, techno or jazz, mapped to where it began). "
        f"This report counts: <b>{_esc(rule['rule_text'])}</b> (<code>--region-evidence {_esc(rule['rule'])}</code>). "
        f"{rule['clips_with_origin_evidence']} clips carry genre-origin evidence; "
        f"{rule['clips_with_only_origin_evidence']} have region evidence only from it."
        + (f" Reference: about {_pct(ref)} of the world's people live in the Global South." if ref else "")
        + "</p>",
        _table(["rule", "what counts", "clips with region evidence", "Global South share", "95% CI"], head_rows,
               attrs=' id="rule-headline"'),
    ]
    if "region_rule.png" in pngs:
        parts.append(_figure("region_rule.png", pngs["region_rule.png"], "Global South share under each rule, "
                             "overall and per genre (genres with at least 10 clips with region evidence)"))
    regions = rule["rules"][compared[0]]["region"]
    rows = []
    for g in sorted(regions, key=lambda g: -rule["rules"][compared[-1]]["region"][g]["count"]):
        row: list[Any] = [regions[g]["label"], "South" if regions[g]["rollup"] == "global_south" else "North"]
        for r in compared:
            x = rule["rules"][r]["region"][g]
            row += [x["count"], _pct(x["share_of_specified"]), _ci_text(x["ci_of_specified"])]
        rows.append(row)
    heads = ["region", "roll-up"]
    for r in compared:
        heads += [f"clips ({r})", f"share ({r})", f"95% CI ({r})"]
    parts += ["<h3>Coverage by region under both rules</h3>", _table(heads, rows, sortable=True)]
    term_rows = [
        [
            t["label"],
            ", ".join(t["terms"]),
            t["clips"],
            f"{100 * t['delta_added_alone']:+.1f} pp",
            f"{100 * t['delta_removed_alone']:+.1f} pp",
        ]
        for t in rule["moving_terms"]
    ]
    parts += [
        "<h3>The genre-origin evidence that moves the figure most</h3>",
        "<p class=small>Per genre family: the change in the Global South share when its genre-origin evidence is "
        "added alone to the explicit evidence, and when it alone is removed from all evidence (percentage points)."
        "</p>",
        _table(["genre family", "most frequent terms", "clips", "added to explicit", "removed from both"], term_rows,
               sortable=True),
    ]
    genre_rows = []
    for g in rule["by_genre"]:
        row = [g["label"], g["clips"]]
        for r in compared:
            row += [g[r]["specified"], _pct(g[r]["share"]), _ci_text(g[r]["ci"])]
        genre_rows.append(row)
    heads = ["genre", "clips"]
    for r in compared:
        heads += [f"with region evidence ({r})", f"Global South share ({r})", f"95% CI ({r})"]
    parts += ["<h3>Global South share per genre under both rules</h3>", _table(heads, genre_rows, sortable=True)]
    return "".join(parts)


def summary_section(metrics: dict, pngs: dict[str, bytes]) -> str:
    ranked = [f for f in metrics["findings"] if f.get("rank")]
    parts = [f"<p class=small>{_esc(SUMMARY_SCOPE)} Ranked by {_esc(SCORE_TEXT)}.</p>"]
    if not ranked:
        parts.append("<p>No finding is significant after Benjamini-Hochberg correction.</p>")
    parts.append('<ol class="summary">')
    for f in ranked:
        fig = estimate_svg(f["picture"])
        parts.append(
            f'<li class="finding" data-kind="{_esc(f["kind"])}"><p>{_esc(f["sentence"])} '
            f'<span class=small>(score {f["score"]:.1f})</span></p>{fig}</li>'
        )
    parts.append("</ol>")
    if "forest.png" in pngs:
        parts.append(
            _figure("forest.png", pngs["forest.png"], "crude and annotator-adjusted risk ratios of the strongest "
                    "group x word-family associations; a pair marked confounded changes conclusion within annotators")
        )
    return "".join(parts)


def _who(f: dict) -> str:
    n = f.get("numbers", {})
    if f["kind"] == "annotator_habit":
        return f"annotator {f['author_id']}"
    grouping, group = n.get("grouping", f.get("grouping", "")), n.get("group", f.get("group", ""))
    return f"{grouping}:{group}" if group else str(grouping or "")


def appendix_section(metrics: dict) -> str:
    rows = []
    for f in metrics["findings"]:
        n = f.get("numbers", {})
        by = f.get("ranked_by") or {}
        ratio = by.get("ratio")
        rows.append(
            [
                f.get("rank") or "",
                f["kind"],
                f["severity"],
                _who(f),
                n.get("descriptor", ""),
                f"{ratio:.3g}" if ratio is not None else "",
                f"[{by['ci'][0]:.3g}, {by['ci'][1]:.3g}]" if by else "",
                f"{n['q']:.2g}" if "q" in n else "",
                f"{f['score']:.1f}" if f.get("score") is not None else "",
                f["text"],
            ]
        )
    return (
        f"<p class=small>All {len(rows)} findings; click a column header to sort. Ratio: the estimate the score "
        f"uses (annotator-adjusted for confounded findings); q: Benjamini-Hochberg.</p>"
        + _table(["rank", "kind", "severity", "who", "descriptor", "ratio", "95% CI", "q", "score", "finding"], rows,
                 sortable=True, attrs=' id="appendix"')
    )
