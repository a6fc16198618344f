"""How much the audit's region figures depend on the region-evidence rule.

Region evidence is either explicit (a named culture, country, language, instrument or tradition) or
genre-origin (a globalized genre mapped to where it began); see taxonomy.yaml. The headline Global
South share, the region coverage table and the per-genre roll-up are computed under each rule from
one set of assignments made with all evidence, and every genre-origin term is ranked by how far
adding it alone to the explicit evidence, or dropping it alone from all evidence, moves the headline.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from cadenza.audit.groupings import UNSPECIFIED
from cadenza.audit.taxonomy import Assignment, Taxonomy
from cadenza.common.stats import wilson

COMPARED_RULES = ("explicit", "both")  # the two readings a reviewer compares
RULE_TEXT = {
    "explicit": "explicit cultural evidence only (named cultures, countries, languages, instruments, traditions)",
    "origin": "genre-origin evidence only (globalized genres mapped to where they began)",
    "both": "explicit evidence and genre origin (globalized genres count for the region where they began)",
}


def _south_share(rollups: Sequence[str]) -> dict[str, Any]:
    counts = Counter(rollups)
    specified = len(rollups) - counts.get(UNSPECIFIED, 0)
    south = counts.get("global_south", 0) + counts.get("mixed", 0)
    return {
        "specified": specified,
        "global_south_any": south,
        "share": south / specified if specified else 0.0,
        "ci": list(wilson(south, specified)),
    }


def _region_rows(views: Sequence[Assignment], taxonomy: Taxonomy) -> dict[str, dict[str, Any]]:
    counts = Counter(g for a in views for g in a.groups["region"])
    specified = len(views) - counts.get(UNSPECIFIED, 0)
    return {
        g: {
            "label": taxonomy.group_label("region", g),
            "rollup": taxonomy.rollup_of(g),
            "count": counts.get(g, 0),
            "share_of_specified": counts.get(g, 0) / specified if specified else 0.0,
            "ci_of_specified": list(wilson(counts.get(g, 0), specified)),
        }
        for g in taxonomy.groupings["region"]["groups"]
    }


def _family_of(term: str, taxonomy: Taxonomy) -> str:
    """The genre a genre-origin term stands for (its lexicon entry's or label's genre), else the term."""
    if term.startswith("label:"):
        genres = taxonomy.labels.get(term.removeprefix("label:"), {}).get("genre", ())
    else:
        genres = taxonomy.lexicon.get(term, {}).get("genre", ())
    return genres[0] if len(genres) == 1 else term.removeprefix("label:")


def moving_terms(
    assignments: Sequence[Assignment], explicit: Sequence[Assignment], taxonomy: Taxonomy, top: int = 12
) -> list[dict[str, Any]]:
    """Genre-origin evidence, family by family (the genre its terms stand for), by how far it moves the
    Global South share: added alone to the explicit evidence, and removed alone from all evidence."""
    explicit_rollups = [a.rollup for a in explicit]
    both_rollups = [a.rollup for a in assignments]
    base = {"added": _south_share(explicit_rollups)["share"], "removed": _south_share(both_rollups)["share"]}
    origin_terms = {e.term for a in assignments for e in a.evidence if e.basis == "origin"}
    family_of = {t: _family_of(t, taxonomy) for t in origin_terms}
    families: dict[str, list[int]] = defaultdict(list)
    terms: dict[str, Counter] = defaultdict(Counter)
    for i, a in enumerate(assignments):
        seen = set()
        for e in a.evidence:
            if e.grouping == "region" and e.basis == "origin":
                fam = family_of[e.term]
                terms[fam][e.text.lower() if e.source != "label" else f"label {e.text}"] += 1
                seen.add(fam)
        for fam in seen:
            families[fam].append(i)
    out = []
    for fam, idx in families.items():
        shifted = {"added": list(explicit_rollups), "removed": list(both_rollups)}
        for i in idx:
            region = [e for e in assignments[i].evidence if e.grouping == "region"]
            keep_explicit = {e.group for e in region if e.basis == "explicit"}
            in_family = {e.group for e in region if e.basis == "origin" and family_of[e.term] == fam}
            others = {e.group for e in region if e.basis == "origin" and family_of[e.term] != fam}
            shifted["added"][i] = taxonomy.rollup_of_regions(sorted(keep_explicit | in_family))
            shifted["removed"][i] = taxonomy.rollup_of_regions(sorted(keep_explicit | others))
        row: dict[str, Any] = {
            "family": fam,
            "label": taxonomy.group_label("genre", fam) if fam in taxonomy.groupings["genre"]["groups"] else fam,
            "clips": len(idx),
            "terms": [t for t, _ in terms[fam].most_common(5)],
        }
        for k in ("added", "removed"):
            share = _south_share(shifted[k])["share"]
            row[f"share_{k}_alone"] = share
            row[f"delta_{k}_alone"] = share - base[k]
        out.append(row)
    out.sort(key=lambda r: (-abs(r["delta_added_alone"]), -r["clips"], r["family"]))
    return out[:top]


def region_sensitivity(assignments: Sequence[Assignment], taxonomy: Taxonomy, rule: str) -> dict[str, Any]:
    """Headline, region coverage and per-genre Global South shares under each compared rule.

    `assignments` must be made with every kind of region evidence (rule "both"); `rule` is the one
    the rest of the audit uses, named in the report."""
    views = {r: [taxonomy.region_view(a, r) for a in assignments] for r in COMPARED_RULES}
    rules: dict[str, Any] = {}
    for r, view in views.items():
        rules[r] = {
            "text": RULE_TEXT[r],
            "headline": _south_share([a.rollup for a in view]),
            "rollup_counts": dict(Counter(a.rollup for a in view)),
            "region": _region_rows(view, taxonomy),
        }
    by_genre = []
    for genre in taxonomy.groupings["genre"]["groups"]:
        row: dict[str, Any] = {"genre": genre, "label": taxonomy.group_label("genre", genre)}
        for r, view in views.items():
            row[r] = _south_share([a.rollup for a in view if genre in a.groups["genre"]])
        row["clips"] = sum(1 for a in assignments if genre in a.groups["genre"])
        if row["clips"]:
            by_genre.append(row)
    by_genre.sort(key=lambda x: -x["clips"])
    origin_clips = sum(1 for a in assignments if any(e.basis == "origin" for e in a.evidence))
    only_origin = sum(
        1
        for a in assignments
        if a.rollup != UNSPECIFIED and not any(e.basis == "explicit" for e in a.evidence if e.grouping == "region")
    )
    return {
        "rule": rule,
        "rule_text": RULE_TEXT[rule],
        "compared": list(COMPARED_RULES),
        "rules": rules,
        "clips_with_origin_evidence": origin_clips,
        "clips_with_only_origin_evidence": only_origin,
        "moving_terms": moving_terms(assignments, views["explicit"], taxonomy),
        "by_genre": by_genre,
    }
