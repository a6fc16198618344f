"""Cultural-group taxonomy: evidence (AudioSet labels, aspect lists, captions) -> groups, with reasons.

The taxonomy itself is data (taxonomy.yaml, sources cited there; taxonomy_file.py reads it); this module
applies it. Every assignment keeps its evidence so a reader can see why a clip was counted, and a clip
with no evidence for a grouping is "unspecified" in it: nothing is guessed. Terms are found in text by
the whole-word matcher of phrase_match.py.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cadenza.audit.groupings import GROUPINGS, REGION_RULES, UNSPECIFIED, TaxonomyError
from cadenza.audit.phrase_match import PhraseMatcher, norm_tokens
from cadenza.musiccaps.ontology import Ontology
from cadenza.musiccaps.schema import ClipRecord

_ASPECT_SEP = " | "  # aspects are matched joined by a clause break, then mapped back by offset


@dataclass(frozen=True)
class Evidence:
    """Why a clip is in a group: the label or phrase, where it was found, and (for captions) where."""

    grouping: str
    group: str
    source: str  # "label" | "aspect" | "caption"
    text: str  # the label name, or the exact matched text
    via: str = ""  # for labels: the mapped ancestor class that decided, when not the label itself
    span: tuple[int, int] | None = None  # caption character offsets of `text`
    aspect: int = -1  # index into the aspect list
    basis: str = ""  # region evidence only: "explicit" or "origin" (see REGION_BASES)
    term: str = ""  # the taxonomy entry that decided: normalised lexicon term, or "label:<class name>"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"grouping": self.grouping, "group": self.group, "source": self.source, "text": self.text}
        if self.via:
            d["via"] = self.via
        if self.span is not None:
            d["span"] = list(self.span)
        if self.aspect >= 0:
            d["aspect"] = self.aspect
        if self.basis:
            d["basis"] = self.basis
        return d


@dataclass(frozen=True)
class Descriptor:
    name: str
    label: str
    terms: tuple[str, ...] = ()
    from_grouping: str = ""
    numeric: str = ""  # "caption_words" | "aspect_count"
    not_for: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "numeric" if self.numeric else "text"


@dataclass
class Assignment:
    """One clip's groups in every grouping, its Global North/South roll-up, evidence and descriptors."""

    clip: ClipRecord
    groups: dict[str, list[str]]
    rollup: str
    evidence: list[Evidence]
    descriptor_hits: dict[str, list[str]] = field(default_factory=dict)  # text family -> matched texts
    caption_words: int = 0
    aspect_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The assignments.jsonl line (contract in the project docs)."""
        return {
            "ytid": self.clip.ytid,
            "key": self.clip.key,
            "row": self.clip.row,
            "author_id": self.clip.author_id,
            "groups": self.groups,
            "rollup": self.rollup,
            "evidence": [e.to_dict() for e in self.evidence],
            "descriptors": self.descriptor_hits,
        }


@dataclass
class Taxonomy:
    groupings: dict[str, dict[str, Any]]  # grouping -> {"description", "groups": {group: {"label","rollup"?}}}
    labels: dict[str, dict[str, tuple[str, ...]]]  # AudioSet class name -> grouping -> groups
    lexicon: dict[str, dict[str, tuple[str, ...]]]  # normalised term -> grouping -> groups
    lexicon_terms: tuple[str, ...]  # the terms as written (the matcher needs their word boundaries)
    aspect_only: frozenset[str]
    descriptors: dict[str, Descriptor]
    negations: tuple[str, ...]
    reference_share: dict[str, float]
    source: str = ""
    origin_terms: frozenset[str] = frozenset()  # lexicon keys whose region evidence is genre-origin
    origin_labels: frozenset[str] = frozenset()  # AudioSet class names whose region evidence is genre-origin

    @cached_property
    def _lexicon_matcher(self) -> PhraseMatcher:
        return PhraseMatcher(list(self.lexicon_terms), list(self.negations))

    @cached_property
    def _descriptor_matcher(self) -> tuple[PhraseMatcher, dict[str, str]]:
        """One matcher for every text family; the dict maps a normalised term to its family."""
        family: dict[str, str] = {}
        terms: list[str] = []
        for d in self.descriptors.values():
            for t in d.terms:
                key = "".join(norm_tokens(t))
                if family.setdefault(key, d.name) != d.name:
                    raise TaxonomyError(f"{self.source}: descriptor term {t!r} is in two families")
                terms.append(t)
        return PhraseMatcher(terms, list(self.negations)), family

    def group_label(self, grouping: str, group: str) -> str:
        if group == UNSPECIFIED:
            return "Unspecified (no evidence)"
        if grouping == "rollup":
            return {"global_north": "Global North", "global_south": "Global South", "mixed": "Both"}.get(group, group)
        return self.groupings[grouping]["groups"].get(group, {}).get("label", group)

    def rollup_of(self, region: str) -> str:
        return self.groupings["region"]["groups"][region].get("rollup", UNSPECIFIED)

    def _label_assignments(self, ontology: Ontology) -> dict[str, list[tuple[str, str, str]]]:
        """MID -> [(grouping, group, deciding class name)], the nearest mapped class per grouping."""
        cache = getattr(self, "_label_cache", None)
        if cache is not None and cache[0] is ontology:
            return cache[1]
        # A class the ontology lacks (a subset ontology, as the demo ships, or an older AudioSet release)
        # simply maps nothing; tests check that every name exists in the full ontology.
        ids = {n: m for m, n in ontology.names.items()}
        by_name = {name: ids[name] for name in self.labels if name in ids}
        if self.labels and not by_name:
            raise TaxonomyError(f"{self.source}: none of its label names is an AudioSet class in this ontology")
        mapped = {mid: name for name, mid in by_name.items()}
        out: dict[str, list[tuple[str, str, str]]] = {}
        for mid in ontology.names:
            found: list[tuple[str, str, str]] = []
            done: set[str] = set()
            frontier, seen = [mid], {mid}
            while frontier and len(done) < len(GROUPINGS):  # breadth-first: nearest ancestors first
                level_hits: dict[str, set[tuple[str, str]]] = {}
                for node in frontier:
                    if node in mapped:
                        for grouping, groups in self.labels[mapped[node]].items():
                            if grouping not in done:
                                level_hits.setdefault(grouping, set()).update((g, mapped[node]) for g in groups)
                for grouping, hits in level_hits.items():
                    done.add(grouping)
                    found.extend((grouping, g, via) for g, via in sorted(hits))
                nxt = []
                for node in frontier:
                    for p in ontology.parents.get(node, ()):
                        if p not in seen:
                            seen.add(p)
                            nxt.append(p)
                frontier = nxt
            if found:
                out[mid] = found
        self._label_cache = (ontology, out)
        return out

    @staticmethod
    def _basis(grouping: str, origin: bool) -> str:
        if grouping != "region":
            return ""
        return "origin" if origin else "explicit"

    def rollup_of_regions(self, regions: Sequence[str]) -> str:
        rollups = {self.rollup_of(r) for r in regions if r != UNSPECIFIED}
        rollups.discard(UNSPECIFIED)
        return UNSPECIFIED if not rollups else rollups.pop() if len(rollups) == 1 else "mixed"

    def region_view(self, a: Assignment, rule: str) -> Assignment:
        """The same clip as `assign(..., region_evidence=rule)` would see it, from an assignment made
        with every kind of region evidence: only region groups, the roll-up and region-derived
        descriptors change."""
        if rule == "both":
            return a
        evidence = [e for e in a.evidence if e.grouping != "region" or e.basis == rule]
        regions = sorted({e.group for e in evidence if e.grouping == "region"}) or [UNSPECIFIED]
        hits = dict(a.descriptor_hits)
        for name, d in self.descriptors.items():
            if d.from_grouping == "region":
                found = [e.text for e in evidence if e.grouping == "region" and e.source != "label"]
                if found:
                    hits[name] = found
                else:
                    hits.pop(name, None)
        return dataclasses.replace(
            a, groups={**a.groups, "region": regions}, rollup=self.rollup_of_regions(regions), evidence=evidence,
            descriptor_hits=hits,
        )

    def assign(self, clip: ClipRecord, ontology: Ontology | None = None, region_evidence: str = "both") -> Assignment:
        """Groups of one clip. `region_evidence` (one of REGION_RULES) says which kinds of region
        evidence count; evidence of the other kind is dropped."""
        if region_evidence not in REGION_RULES:
            raise ValueError(f"region_evidence must be one of {', '.join(REGION_RULES)} (got {region_evidence!r})")
        evidence: list[Evidence] = []
        if ontology is not None:
            table = self._label_assignments(ontology)
            for mid in clip.audioset_labels:
                name = ontology.name(mid)
                for grouping, group, via in table.get(mid, ()):
                    basis = self._basis(grouping, via in self.origin_labels)
                    evidence.append(
                        Evidence(grouping, group, "label", name, via="" if via == name else via, basis=basis,
                                 term=f"label:{via}")
                    )
        aspects_text = _ASPECT_SEP.join(clip.aspect_list)
        starts = [0]
        for a in clip.aspect_list[:-1]:
            starts.append(starts[-1] + len(a) + len(_ASPECT_SEP))
        for m in self._lexicon_matcher.find(aspects_text):
            idx = bisect.bisect_right(starts, m.start) - 1
            for grouping, targets in self.lexicon[m.key].items():
                basis = self._basis(grouping, m.key in self.origin_terms)
                evidence.extend(
                    Evidence(grouping, g, "aspect", m.text, aspect=idx, basis=basis, term=m.key) for g in targets
                )
        for m in self._lexicon_matcher.find(clip.caption):
            if m.key in self.aspect_only:
                continue
            for grouping, targets in self.lexicon[m.key].items():
                basis = self._basis(grouping, m.key in self.origin_terms)
                evidence.extend(
                    Evidence(grouping, g, "caption", m.text, span=(m.start, m.end), basis=basis, term=m.key)
                    for g in targets
                )
        if region_evidence != "both":
            evidence = [e for e in evidence if e.grouping != "region" or e.basis == region_evidence]
        groups: dict[str, list[str]] = {}
        for grouping in GROUPINGS:
            found = sorted({e.group for e in evidence if e.grouping == grouping})
            groups[grouping] = found or [UNSPECIFIED]
        rollup = self.rollup_of_regions(groups["region"])
        hits: dict[str, list[str]] = {}
        matcher, family = self._descriptor_matcher
        for text in (aspects_text, clip.caption):
            for m in matcher.find(text):
                hits.setdefault(family[m.key], []).append(m.text)
        for name, d in self.descriptors.items():
            if d.from_grouping:
                found = [e.text for e in evidence if e.grouping == d.from_grouping and e.source != "label"]
                if found:
                    hits[name] = found
        return Assignment(
            clip=clip,
            groups=groups,
            rollup=rollup,
            evidence=evidence,
            descriptor_hits=hits,
            caption_words=len(clip.caption.split()),
            aspect_count=len(clip.aspect_list),
        )

    def assign_all(
        self, clips: list[ClipRecord], ontology: Ontology | None = None, region_evidence: str = "both"
    ) -> list[Assignment]:
        return [self.assign(c, ontology, region_evidence) for c in clips]
