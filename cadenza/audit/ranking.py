"""Rank the audit's findings so a reviewer reads the few that matter first.

score = effect size x precision x group size, with
- effect size: |ln R|, R the finding's ratio (risk ratio, survival ratio, share / reference share);
  for a finding whose conclusion changes once annotators are accounted for, R is the annotator-
  adjusted (Mantel-Haenszel) risk ratio, so a confounded effect ranks by what is left of it;
- precision: 1 / SE(ln R), the SE read off the 95% CI;
- group size: log10 of the clips the ratio is about (group, annotator, or clips with evidence).
Only alerts are ranked. The summary keeps the top findings, at most one per (kind, descriptor,
grouping) so that one pattern seen through correlated groups does not fill it. Each summary finding
gets one sentence and the rows of its picture (estimate and CI per row, with the reference line).
"""

from __future__ import annotations

import math
from typing import Any

from cadenza.audit.stats import pct as _pct
from cadenza.audit.stats import ratio_text
from cadenza.common.stats import Z95

SCORE_TEXT = (
    "score = |ln R| x 1/SE(ln R) x log10(clips), R the finding's ratio (annotator-adjusted for confounded "
    "findings), SE from its 95% CI"
)
SUMMARY_SIZE = 10
ROLLUP_LABELS = {"global_north": "Global North", "global_south": "Global South", "mixed": "mixed North/South"}
CULTURAL = ("region", "rollup", "genre")  # groupings whose description bears on cultural bias
SUMMARY_SCOPE = (
    "The summary ranks the findings that bear on cultural bias: representation against world population, "
    "download survival, how region, roll-up and genre groups are described with words (quality, othering, "
    "voice mentions), and annotators' habits with those words. Caption length and aspect counts, and the "
    "instrument, language and voice groupings, are in the appendix."
)


def _rr_ci(ci) -> str:
    return f"[{ratio_text(ci[0])}, {ratio_text(ci[1])}]"


def _se(ci) -> float:
    lo, hi = ci
    if not (lo and lo > 0 and math.isfinite(hi) and hi > lo):
        return math.inf
    return (math.log(hi) - math.log(lo)) / (2 * Z95)


def score_of(ratio: float, ci, clips: int) -> float:
    if not (ratio and ratio > 0 and math.isfinite(ratio)) or clips < 2:
        return 0.0
    se = _se(ci)
    if not math.isfinite(se) or se <= 0:
        return 0.0
    return abs(math.log(ratio)) / se * math.log10(clips)


def _who(metrics: dict, grouping: str, group: str) -> str:
    if grouping == "rollup":
        return ROLLUP_LABELS.get(group, group)
    return metrics["groupings"][grouping]["groups"].get(group, group)


def _descriptor(metrics: dict, name: str) -> str:
    label = metrics["description"]["descriptors"][name]["label"]
    return label[:1].lower() + label[1:]


def _basis(f: dict, metrics: dict) -> dict[str, Any] | None:
    """The ratio a finding is ranked by, its CI, the clips it is about, one sentence and its picture."""
    n, kind = f.get("numbers", {}), f["kind"]
    text_family = metrics["description"]["descriptors"].get(n.get("descriptor"), {}).get("kind") == "text"
    if kind in ("description", "annotator_confounding", "annotator_habit") and not text_family:
        return None
    if kind in ("description", "annotator_confounding") and n["grouping"] not in CULTURAL:
        return None
    if kind == "global_south_share":
        ref = n.get("reference")
        if not ref:
            return None
        names = {"explicit": "explicit only", "origin": "genre origin only", "both": "explicit + genre origin"}
        rows = [[names.get(rule, rule), h["share"], *h["ci"]] for rule, h in n["by_rule"].items()]
        return {
            "ratio": n["share"] / ref,
            "ci": [n["ci"][0] / ref, n["ci"][1] / ref],
            "clips": n["specified"],
            "sentence": f["sentence"],
            "picture": {"rows": rows, "ref": ref, "ref_label": "world population", "xlabel": "Global South share",
                        "log": False},
        }
    if kind in ("description", "annotator_confounding"):
        who, what = _who(metrics, n["grouping"], n["group"]), _descriptor(metrics, n["descriptor"])
        rows = [["crude", n["rr"], *n["rr_ci"]], ["within annotators", n["mh_rr"], *n["mh_rr_ci"]]]
        what = what[:1].upper() + what[1:]
        pic = {"rows": rows, "ref": 1.0, "ref_label": "no difference", "xlabel": "risk ratio vs the rest", "log": True}
        if kind == "annotator_confounding":
            d = n["driver"]
            sentence = (
                f"{what}: {who} clips look {'more' if n['rr'] > 1 else 'less'} described this way "
                f"(crude RR {ratio_text(n['rr'])}), but within annotators the RR is {ratio_text(n['mh_rr'])} "
                f"{_rr_ci(n['mh_rr_ci'])}: annotator {d['author_id']} drives it."
            )
            return {"ratio": n["mh_rr"], "ci": n["mh_rr_ci"], "clips": n["n_group"], "sentence": sentence,
                    "picture": pic}
        sentence = (
            f"{what} in {_pct(n['rate_group'])} of {who} clips vs {_pct(n['rate_rest'])} of the rest "
            f"(RR {ratio_text(n['rr'])} {_rr_ci(n['rr_ci'])}; within annotators {ratio_text(n['mh_rr'])})."
        )
        return {"ratio": n["rr"], "ci": n["rr_ci"], "clips": n["n_group"], "sentence": sentence, "picture": pic}
    if kind == "annotator_habit":
        what = _descriptor(metrics, n["descriptor"])
        sentence = (
            f"Annotator {f['author_id']}: {what} in {_pct(n['rate'])} of their {n['clips']} captions vs "
            f"{_pct(n['rate_others'])} for the others (RR {ratio_text(n['rr'])} {_rr_ci(n['rr_ci'])})."
        )
        pic = {"rows": [["annotator vs others", n["rr"], *n["rr_ci"]]], "ref": 1.0, "ref_label": "same as others",
               "xlabel": "risk ratio", "log": True}
        return {"ratio": n["rr"], "ci": n["rr_ci"], "clips": n["clips"], "sentence": sentence, "picture": pic}
    if kind == "survival" and f["severity"] == "alert":
        who = _who(metrics, f["grouping"], f["group"])
        sentence = (
            f"{_pct(n['rate'])} of {who} clips survived download vs {_pct(n['rate_rest'])} of the rest "
            f"(ratio to overall {ratio_text(n['ratio_to_overall'])} {_rr_ci(n['ratio_ci'])})."
        )
        pic = {"rows": [[who, n["rate"], *n["ci"]], ["rest", n["rate_rest"], n["rate_rest"], n["rate_rest"]]],
               "ref": metrics["survival"]["overall_rate"], "ref_label": "overall", "xlabel": "survival rate",
               "log": False}
        return {"ratio": n["ratio_to_overall"], "ci": n["ratio_ci"], "clips": n["survived"] + n["lost"],
                "sentence": sentence, "picture": pic}
    return None


def _family(f: dict) -> tuple:
    n = f.get("numbers", {})
    grouping = n.get("grouping", f.get("grouping"))
    if grouping == "rollup":  # the roll-up restates region findings
        grouping = "region"
    return f["kind"], n.get("descriptor"), grouping


def rank_findings(findings: list[dict[str, Any]], metrics: dict, size: int = SUMMARY_SIZE) -> list[dict[str, Any]]:
    """Give every alert a score; mark the summary (rank 1..size) and give each of those a sentence and a
    picture. Returns the summary, best first."""
    scored = []
    for f in findings:
        f["score"] = None
        f["rank"] = None
        if f["severity"] != "alert":
            continue
        basis = _basis(f, metrics)
        if basis is None:
            continue
        f["score"] = score_of(basis["ratio"], basis["ci"], basis["clips"])
        f["ranked_by"] = {"ratio": basis["ratio"], "ci": basis["ci"], "clips": basis["clips"]}
        scored.append((f, basis))
    scored.sort(key=lambda fb: -fb[0]["score"])
    summary, seen = [], set()
    for f, basis in scored:
        if len(summary) == size or f["score"] <= 0:
            break
        key = _family(f)
        if key in seen:
            continue
        seen.add(key)
        f["rank"] = len(summary) + 1
        f["sentence"] = basis["sentence"]
        f["picture"] = basis["picture"]
        summary.append(f)
    return summary


def forest_tests(metrics: dict, size: int = 12, confounded: int = 6, per_descriptor: int = 4) -> list[dict[str, Any]]:
    """The group x descriptor tests the forest plot shows: the strongest significant crude associations of
    cultural groups with word families (at most `per_descriptor` per family, so one family does not fill
    it), plus the strongest whose conclusion changes within annotators."""
    meta = metrics["description"]["descriptors"]
    tests = [
        t
        for t in metrics["description"]["tests"]
        if t["grouping"] in CULTURAL
        and meta[t["descriptor"]]["kind"] == "text"
        and (t["significant"] or t["significant_mh"])
    ]

    def crude_score(t: dict) -> float:
        return score_of(t["crude"]["rr"], t["crude"]["rr_ci"], t["n_group"])

    tests.sort(key=lambda t: -crude_score(t))
    picked: list[dict[str, Any]] = []
    per: dict[str, int] = {}
    for t in tests:
        if not t["conclusion_changes"] and len(picked) < size and per.get(t["descriptor"], 0) < per_descriptor:
            picked.append(t)
            per[t["descriptor"]] = per.get(t["descriptor"], 0) + 1
    picked += [t for t in tests if t["conclusion_changes"]][:confounded]
    return sorted(picked, key=lambda t: -crude_score(t))
