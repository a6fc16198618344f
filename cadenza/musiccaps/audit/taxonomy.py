"""Cultural-group taxonomy: evidence (AudioSet labels, aspect lists, captions) -> groups, with reasons.

The taxonomy itself is data (taxonomy.yaml, sources cited there); this module loads it and applies
it. Every assignment keeps its evidence so a reader can see why a clip was counted, and a clip with
no evidence for a grouping is "unspecified" in it: nothing is guessed.

Text is matched on word tokens, not substrings: "male" never matches inside "female", "pop" never
inside "popular". Spaces and hyphens between words are interchangeable, a final s/es plural matches,
the longest phrase starting at a word wins, and a term is dropped when a negation word ("no",
"without", ...) precedes it within three words of the same clause.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from cadenza.musiccaps.ontology import Ontology
from cadenza.musiccaps.schema import ClipRecord

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")
GROUPINGS = ("region", "genre", "instrument", "language", "vocal_gender")
UNSPECIFIED = "unspecified"
# Kinds of region evidence: "explicit" names a culture, country, language, instrument or tradition;
# "origin" is a globalized genre mapped to where it began (rock -> North America and Europe).
REGION_BASES = ("explicit", "origin")
REGION_RULES = ("explicit", "origin", "both")  # which kinds of region evidence count
ROLLUPS = ("global_north", "global_south", "mixed", UNSPECIFIED)
_TOKEN = re.compile(r"\w+(?:&\w+)?")
_NEXT_WORD = re.compile(r"[\s\-'\u2019]*(\w+(?:&\w+)?)")  # the next word of a phrase, over joinable gaps
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]\"|]")
_ASPECT_SEP = " | "  # aspects are matched joined by a clause break, then mapped back by offset
_MAX_NEGATION_DISTANCE = 3


class TaxonomyError(ValueError):
    """The taxonomy file is inconsistent; the message names the entry."""


def _norm_tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


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
class Match:
    key: str  # normalised term
    text: str  # exact text matched
    start: int
    end: int


def _trie_regex(words: set[str]) -> str:
    """One regex alternation factored as a trie, so the regex engine scans text in linear time."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if ends else body

    return build(trie)


class PhraseMatcher:
    """Whole-word, longest-first phrase matcher.

    A trie regex finds words that can start a term; the phrase is then extended word by word (over
    spaces, hyphens and apostrophes only) and the longest known term wins.
    """

    def __init__(self, terms: list[str], negations: Sequence[str] = ()):
        self.keys: set[str] = set()
        self.prefixes: set[str] = set()  # joined first words of multi-word terms: when to keep extending
        self.max_words = 1
        first_tokens: set[str] = set()
        for term in terms:
            toks = _norm_tokens(term)
            if not toks:
                raise TaxonomyError(f"empty term {term!r}")
            joined = "".join(toks)
            self.keys.add(joined)
            self.prefixes.update("".join(toks[:n]) for n in range(1, len(toks)))
            self.max_words = max(self.max_words, len(toks))
            # a phrase starts with its first word; "hiphop" written as one word and plurals of
            # one-word terms must also be found as starts
            first_tokens.update((toks[0], joined, joined + "s", joined + "es"))
        pattern = r"(?<![\w&])(?:" + _trie_regex(first_tokens) + r")(?![\w&])"
        self._first = re.compile(pattern)  # run on lowercased text: twice as fast as IGNORECASE
        self._first_i = re.compile(pattern, re.IGNORECASE)
        # "isn't" tokenises as "isn" + "t": the first token identifies the negation
        self.negations = {_norm_tokens(n)[0] for n in negations if _norm_tokens(n)}

    def _lookup(self, joined: str) -> str | None:
        if joined in self.keys:
            return joined
        if joined.endswith("s") and joined[:-1] in self.keys:
            return joined[:-1]
        if joined.endswith("es") and joined[:-2] in self.keys:
            return joined[:-2]
        return None

    def find(self, text: str) -> list[Match]:
        out: list[Match] = []
        if not self.keys:
            return out
        pos = 0
        low = text.lower()
        if len(low) != len(text):  # a few Unicode letters lowercase to two characters
            low, first = text, self._first_i
        else:
            first = self._first
        while (m := first.search(low, pos)) is not None:
            joined = m.group().lower()
            best = (self._lookup(joined), m.end())
            end = m.end()
            for _ in range(self.max_words - 1):
                if joined not in self.prefixes:
                    break
                nxt = _NEXT_WORD.match(low, end)
                if nxt is None:
                    break
                joined += nxt.group(1).lower()
                end = nxt.end()
                key = self._lookup(joined)
                if key is not None:
                    best = (key, end)
            key, stop = best
            if key is None:  # a word that starts a phrase, but the phrase is not complete here
                pos = m.end()
                continue
            if not self._negated(text, m.start()):
                out.append(Match(key, text[m.start() : stop], m.start(), stop))
            pos = stop
        return out

    def _negated(self, text: str, start: int) -> bool:
        before = _CLAUSE_BREAK.split(text[max(0, start - 60) : start])[-1]
        return any(t in self.negations for t in _norm_tokens(before)[-_MAX_NEGATION_DISTANCE:])


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
                key = "".join(_norm_tokens(t))
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
            key = "".join(_norm_tokens(str(term)))
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
