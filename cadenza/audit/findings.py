"""Plain-language findings, each carrying its numbers, from the audit metrics.

Severity "alert" = a statistically supported flag (after Benjamini-Hochberg at the configured
false discovery rate); "info" = context a reader needs (shares, survival overall, weights).
"""

from __future__ import annotations

from typing import Any

from cadenza.audit.groupings import GROUPINGS
from cadenza.audit.stats import pct as _pct
from cadenza.audit.stats import pct_ci as _ci
from cadenza.audit.stats import ratio_text
from cadenza.audit.taxonomy import Taxonomy


def _rr_ci(ci) -> str:
    return f"[{ratio_text(ci[0])}, {ratio_text(ci[1])}]"


def _q(q: float) -> str:
    return f"q={q:.2g}" if q >= 1e-4 else "q<0.0001"


def _coverage_findings(metrics: dict, taxonomy: Taxonomy, config) -> list[dict[str, Any]]:
    """Context only: how many clips each grouping says nothing about. Shares within a grouping have no
    stated reference (only the roll-up does: world population), so they raise no alert; a grouping
    whose evidence covers fewer than config.rarely_stated of the clips is "rarely stated"."""
    out = []
    n = metrics["clips"]
    for grouping in GROUPINGS:
        cov = metrics["coverage"][grouping]
        unspecified = next(r for r in cov["rows"] if r["group"] == "unspecified")
        stated = cov["specified"] / n if n else 0.0
        numbers = {"unspecified": unspecified["count"], "clips": n, "share": unspecified["share"], "stated": stated}
        if stated < config.rarely_stated:
            out.append(
                {
                    "kind": "rarely_stated",
                    "severity": "info",
                    "grouping": grouping,
                    "numbers": {**numbers, "threshold": config.rarely_stated},
                    "text": f"{grouping}: rarely stated: only {cov['specified']} of {n} clips ({_pct(stated)}, under "
                    f"{_pct(config.rarely_stated)}) carry any {grouping} evidence, so its shares describe what "
                    f"captions mention, not who is represented, and are never reported as under-representation.",
                }
            )
            continue
        out.append(
            {
                "kind": "unspecified_share",
                "severity": "info",
                "grouping": grouping,
                "numbers": numbers,
                "text": f"{grouping}: {unspecified['count']} of {n} clips ({_pct(unspecified['share'])}) carry no "
                "evidence and are counted as unspecified, not guessed.",
            }
        )
    return out


def _rollup_finding(metrics: dict, config) -> list[dict[str, Any]]:
    r = metrics["rollup"]
    if not r["specified"]:
        return []
    ref = r["reference_share"].get("global_south")
    share, ci = r["global_south_any_share"], r["global_south_any_ci"]
    rule = metrics["region_rule"]
    text = (
        f"Of the {r['specified']} clips with region evidence ({rule['rule_text']}), {_pct(share)} {_ci(ci)} carry any "
        f"Global South evidence and {_pct(r['global_north_only_share'])} only Global North evidence"
    )
    other = {k: v["headline"] for k, v in rule["rules"].items() if k != rule["rule"]}
    for k, h in other.items():
        text += f"; counting {k} evidence only: {_pct(h['share'])} {_ci(h['ci'])} of {h['specified']}"
    severity = "info"
    if ref:
        text += f"; about {_pct(ref)} of the world's people live in the Global South"
        severity = "alert" if ci[1] < config.underrep_fraction * ref else "info"
    sentence = f"{_pct(share)} {_ci(ci)} of clips with region evidence carry Global South evidence"
    sentence += "".join(f" ({_pct(h['share'])} {_ci(h['ci'])} counting {k} evidence only)" for k, h in other.items())
    if ref:
        sentence += f", against {_pct(ref)} of the world's people"
    return [
        {
            "kind": "global_south_share",
            "severity": severity,
            "grouping": "rollup",
            "numbers": {
                "specified": r["specified"],
                "share": share,
                "ci": ci,
                "reference": ref,
                "counts": r["counts"],
                "rule": rule["rule"],
                "by_rule": {k: v["headline"] for k, v in rule["rules"].items()},
            },
            "text": text + ".",
            "sentence": sentence + ".",
        }
    ]


def _label(metrics: dict, grouping: str, group: str) -> str:
    if grouping == "rollup":
        return {"global_north": "Global North", "global_south": "Global South", "mixed": "mixed North/South"}[group]
    return metrics["groupings"][grouping]["groups"].get(group, group)


def _association_findings(metrics: dict) -> list[dict[str, Any]]:
    out = []
    meta = metrics["description"]["descriptors"]
    for t in metrics["description"]["tests"]:
        c, mh = t["crude"], t["mh"]
        who = f"{t['grouping']} '{_label(metrics, t['grouping'], t['group'])}'"
        what = meta[t["descriptor"]]["label"]
        numbers = {
            "grouping": t["grouping"],
            "group": t["group"],
            "descriptor": t["descriptor"],
            "rate_group": c["rate_in"],
            "rate_rest": c["rate_rest"],
            "rr": c["rr"],
            "rr_ci": c["rr_ci"],
            "q": t["q"],
            "mh_rr": mh["rr"],
            "mh_rr_ci": mh["rr_ci"],
            "q_mh": t["q_mh"],
            "n_group": t["n_group"],
        }
        crude_txt = (
            f"{what}: {_pct(c['rate_in'])} of {who} clips vs {_pct(c['rate_rest'])} of the rest "
            f"(crude RR {ratio_text(c['rr'])} {_rr_ci(c['rr_ci'])}, {_q(t['q'])})"
        )
        mh_txt = f"annotator-stratified MH RR {ratio_text(mh['rr'])} {_rr_ci(mh['rr_ci'])}, {_q(t['q_mh'])}"
        if t["conclusion_changes"]:
            d = t["driver"]
            if t["significant"] and t["significant_mh"]:
                head = f"{crude_txt}; once annotators are accounted for it mostly disappears ({mh_txt})."
            elif t["significant"]:
                head = f"{crude_txt}; but once annotators are accounted for the association does not hold ({mh_txt})."
            else:
                head = f"{crude_txt}, not significant overall; within annotators it is ({mh_txt})."
            drive = (
                f" Annotator {d['author_id']} drives it: they use it in {_pct(d['rate_annotator'])} of their captions "
                f"(others {_pct(d['rate_others'])}) and wrote {_pct(d['share_of_group'])} of the {who} clips "
                f"({_pct(d['share_of_all'])} of all clips); without them the crude RR is {ratio_text(d['rr_without'])}."
            )
            out.append(
                {
                    "kind": "annotator_confounding",
                    "severity": "alert",
                    "author_id": d["author_id"],
                    "numbers": {**numbers, "driver": d},
                    "text": head + drive,
                }
            )
        elif t["significant"]:
            direction = "more" if c["rr"] > 1 else "less"
            out.append(
                {
                    "kind": "description",
                    "severity": "alert",
                    "direction": direction,
                    "numbers": numbers,
                    "text": f"{crude_txt}: {direction} often for {who}; "
                    + (
                        f"it holds within annotators ({mh_txt})."
                        if t["significant_mh"]
                        else f"within annotators the estimate is too uncertain to confirm or rule out ({mh_txt})."
                    ),
                }
            )
    out.sort(key=lambda f: (f["kind"] != "annotator_confounding", f["numbers"]["q"]))
    return out


def _annotator_findings(metrics: dict) -> list[dict[str, Any]]:
    out = []
    meta = metrics["description"]["descriptors"]
    for prof in metrics["annotators"]["profiles"]:
        for name, e in prof["descriptors"].items():
            if e["significant"]:
                out.append(
                    {
                        "kind": "annotator_habit",
                        "severity": "alert",
                        "author_id": prof["author_id"],
                        "numbers": {
                            "descriptor": name,
                            "rate": e["rate"],
                            "rate_others": e["rate_others"],
                            "rr": e["rr"],
                            "rr_ci": e["rr_ci"],
                            "q": e["q"],
                            "clips": prof["clips"],
                        },
                        "text": f"Annotator {prof['author_id']} ({prof['clips']} clips): {meta[name]['label']} in "
                        f"{_pct(e['rate'])} of their captions vs {_pct(e['rate_others'])} for the other annotators "
                        f"(RR {ratio_text(e['rr'])} {_rr_ci(e['rr_ci'])}, {_q(e['q'])}).",
                    }
                )
    out.sort(key=lambda f: f["numbers"]["q"])
    return out


def _survival_findings(metrics: dict) -> list[dict[str, Any]]:
    s = metrics["survival"]
    if not s:
        return []
    c = s["counts"]
    out = [
        {
            "kind": "survival_overall",
            "severity": "info",
            "numbers": {**c, "rate": s["overall_rate"], "ci": s["overall_ci"]},
            "text": f"{c['survived']} of {c['survived'] + c['lost']} clips survived download "
            f"({_pct(s['overall_rate'])} {_ci(s['overall_ci'])}); {c['pending']} pending "
            f"({s.get('pending_by_category') or 'none'}: never counted as lost) and {c.get('unresolved', 0)} "
            f"unresolved; losses by reason: {s['lost_by_category'] or 'none'}.",
        }
    ]
    for grouping, rows in s["by_grouping"].items():
        for r in rows:
            if r.get("significant"):
                who = f"{grouping} '{_label(metrics, grouping, r['group'])}'"
                lower = r["rate"] < s["overall_rate"]
                out.append(
                    {
                        "kind": "survival",
                        "severity": "alert" if lower else "info",
                        "direction": "lower" if lower else "higher",
                        "grouping": grouping,
                        "group": r["group"],
                        "numbers": {
                            k: r[k]
                            for k in (
                                "survived",
                                "lost",
                                "rate",
                                "ci",
                                "rate_rest",
                                "ratio_to_overall",
                                "ratio_ci",
                                "q",
                            )
                        },
                        "text": f"{_pct(r['rate'])} {_ci(r['ci'])} of {who} clips survived download, "
                        f"{'below' if lower else 'above'} the overall {_pct(s['overall_rate'])} "
                        f"(ratio {ratio_text(r['ratio_to_overall'])} {_rr_ci(r['ratio_ci'])}, {_q(r['q'])}); "
                        f"lost: {r['lost_by_category'] or 'none'}.",
                    }
                )
    return out


def _weights_finding(metrics: dict) -> list[dict[str, Any]]:
    w = metrics["weights"]
    return [
        {
            "kind": "weights",
            "severity": "info",
            "numbers": {k: w[k] for k in ("grouping", "cap", "min", "max", "effective_sample_size")},
            "text": f"Rebalancing weights flatten {w['grouping']} with cap {w['cap']:g}: weights range "
            f"{w['min']:.2f}-{w['max']:.2f}, effective sample size {w['effective_sample_size']:.0f} of "
            f"{metrics['clips']} clips.",
        }
    ]


def build_findings(metrics: dict, taxonomy: Taxonomy, config) -> list[dict[str, Any]]:
    """Every finding: alerts ranked by score (ranking.py; the best few form the summary), then context."""
    from cadenza.audit.ranking import rank_findings

    found = [
        *_coverage_findings(metrics, taxonomy, config),
        *_rollup_finding(metrics, config),
        *_association_findings(metrics),
        *_survival_findings(metrics),
        *_annotator_findings(metrics),
        *_weights_finding(metrics),
    ]
    summary = rank_findings(found, metrics)
    for f in found:
        f["headline"] = f["rank"] is not None
    found.sort(key=lambda f: (f["severity"] != "alert", f["rank"] or len(summary) + 1, -(f["score"] or 0)))
    return found
