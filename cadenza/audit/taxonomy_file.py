"""Reading a taxonomy: the packaged taxonomy.yaml or a user's file with the same structure, validated.

Every inconsistency is a TaxonomyError that names the file and the entry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from cadenza.audit.groupings import GROUPINGS, REGION_BASES, TaxonomyError
from cadenza.audit.phrase_match import norm_tokens
from cadenza.audit.taxonomy import Descriptor, Taxonomy

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")


def _as_tuple(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TaxonomyError(f"{where}: expected a group name or a list of them, got {value!r}")


def _is_origin(entry: dict[str, Any], where: str) -> bool:
    """Whether an entry's region evidence is genre-origin (`region_evidence: origin`); default explicit."""
    basis = entry.get("region_evidence", "explicit")
    if basis not in REGION_BASES:
        raise TaxonomyError(f"{where}: region_evidence must be one of {', '.join(REGION_BASES)} (got {basis!r})")
    if "region_evidence" in entry and "region" not in entry:
        raise TaxonomyError(f"{where}: region_evidence given but the entry maps to no region")
    return basis == "origin"


def _targets(entry: dict[str, Any], groupings: dict[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for grouping in GROUPINGS:
        if grouping in entry:
            groups = _as_tuple(entry[grouping], where)
            unknown = [g for g in groups if g not in groupings[grouping]["groups"]]
            if unknown:
                raise TaxonomyError(f"{where}: unknown {grouping} group(s) {unknown}")
            out[grouping] = groups
    return out


def parse_taxonomy(data: dict[str, Any], source: str = "<taxonomy>") -> Taxonomy:
    """Validate a taxonomy document (the YAML's structure) and build a Taxonomy."""
    if not isinstance(data, dict) or "groupings" not in data:
        raise TaxonomyError(f"{source}: not a taxonomy: expected a mapping with 'groupings'")
    groupings = data["groupings"]
    missing = [g for g in GROUPINGS if g not in groupings]
    if missing:
        raise TaxonomyError(f"{source}: groupings missing: {missing}")
    for grouping in GROUPINGS:
        for name, info in (groupings[grouping].get("groups") or {}).items():
            if not isinstance(info, dict) or set(info) - {"label", "rollup"}:
                raise TaxonomyError(
                    f"{source}: {grouping} group {name!r}: expected {{label, rollup}}, got {info!r} "
                    f"(quote labels that contain commas)"
                )
    for name, region in groupings["region"]["groups"].items():
        if region.get("rollup") not in ("global_north", "global_south"):
            raise TaxonomyError(f"{source}: region {name!r} needs rollup global_north or global_south")
    labels = {
        str(name): _targets(entry, groupings, f"{source}: labels: {name}")
        for name, entry in (data.get("labels") or {}).items()
    }
    origin_labels = frozenset(
        str(name)
        for name, entry in (data.get("labels") or {}).items()
        if _is_origin(entry, f"{source}: labels: {name}")
    )
    origin_terms: set[str] = set()
    lexicon: dict[str, dict[str, tuple[str, ...]]] = {}
    aspect_only: set[str] = set()
    terms_written: list[str] = []
    for i, entry in enumerate(data.get("lexicon") or []):
        where = f"{source}: lexicon entry {i + 1} ({entry.get('terms', [])[:3]}...)"
        targets = _targets(entry, groupings, where)
        if not targets:
            raise TaxonomyError(f"{where}: maps to no group")
        for term in _as_tuple(entry.get("terms"), where):
            key = "".join(norm_tokens(str(term)))
            if key in lexicon and lexicon[key] != targets:
                raise TaxonomyError(f"{where}: term {term!r} already maps to {lexicon[key]}")
            lexicon[key] = targets
            terms_written.append(str(term))
            if _is_origin(entry, where):
                origin_terms.add(key)
            if entry.get("where") == "aspect":
                aspect_only.add(key)
    descriptors: dict[str, Descriptor] = {}
    for name, d in (data.get("descriptors") or {}).items():
        desc = Descriptor(
            name=name,
            label=str(d.get("label", name)),
            terms=tuple(str(t) for t in d.get("terms", ())),
            from_grouping=str(d.get("from_grouping", "")),
            numeric=str(d.get("numeric", "")),
            not_for=tuple(d.get("not_for", ())),
        )
        if sum(bool(x) for x in (desc.terms, desc.from_grouping, desc.numeric)) != 1:
            raise TaxonomyError(f"{source}: descriptor {name!r} needs exactly one of terms, from_grouping, numeric")
        if desc.numeric and desc.numeric not in ("caption_words", "aspect_count"):
            raise TaxonomyError(f"{source}: descriptor {name!r}: numeric must be caption_words or aspect_count")
        if desc.from_grouping and desc.from_grouping not in GROUPINGS:
            raise TaxonomyError(f"{source}: descriptor {name!r}: unknown grouping {desc.from_grouping!r}")
        descriptors[name] = desc
    return Taxonomy(
        groupings=groupings,
        labels=labels,
        lexicon=lexicon,
        lexicon_terms=tuple(terms_written),
        aspect_only=frozenset(aspect_only),
        descriptors=descriptors,
        negations=tuple(str(n) for n in data.get("negation", ())),
        reference_share={k: float(v) for k, v in ((data.get("rollup") or {}).get("reference_share") or {}).items()},
        source=source,
        origin_terms=frozenset(origin_terms),
        origin_labels=origin_labels,
    )


def load_taxonomy(path: str | os.PathLike[str] | None = None) -> Taxonomy:
    """Load the packaged taxonomy (default) or a user's YAML file with the same structure."""
    p = Path(path) if path is not None else DEFAULT_TAXONOMY
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"{p}: cannot read taxonomy: {exc}") from exc
    return parse_taxonomy(data, source=str(p))
