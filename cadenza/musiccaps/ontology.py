"""The AudioSet ontology: MID -> name, parents and children, ancestor closure, restrictions."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache

from cadenza.common.sources import SourceError, resolve_source
from cadenza.formats.defaults import ONTOLOGY_URL


@dataclass(frozen=True, eq=False)
class Ontology:
    names: dict[str, str]
    children: dict[str, tuple[str, ...]]
    parents: dict[str, tuple[str, ...]]
    blacklisted: frozenset[str] = field(default_factory=frozenset)
    abstract: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_entries(cls, entries: list[dict]) -> Ontology:
        names = {e["id"]: e["name"] for e in entries}
        children = {e["id"]: tuple(e.get("child_ids", ())) for e in entries}
        parents: dict[str, list[str]] = {m: [] for m in names}
        for mid, kids in children.items():
            for kid in kids:
                parents.setdefault(kid, []).append(mid)
        restr = {e["id"]: set(e.get("restrictions", ())) for e in entries}
        return cls(
            names=names,
            children=children,
            parents={m: tuple(p) for m, p in parents.items()},
            blacklisted=frozenset(m for m, r in restr.items() if "blacklist" in r),
            abstract=frozenset(m for m, r in restr.items() if "abstract" in r),
        )

    def __hash__(self) -> int:
        return id(self)

    def name(self, mid: str) -> str:
        return self.names.get(mid, mid)

    @cache  # noqa: B019 (the ontology is immutable and lives as long as the process)
    def ancestors(self, mid: str) -> frozenset[str]:
        """Every class above `mid` (not `mid` itself); the ontology is a DAG, so a class can have several."""
        out: set[str] = set()
        stack = list(self.parents.get(mid, ()))
        while stack:
            p = stack.pop()
            if p not in out:
                out.add(p)
                stack.extend(self.parents.get(p, ()))
        return frozenset(out)

    def closure(self, mids: tuple[str, ...] | list[str]) -> frozenset[str]:
        """The labels and all their ancestors."""
        out: set[str] = set(mids)
        for m in mids:
            out |= self.ancestors(m)
        return frozenset(out)

    def descendants(self, mid: str) -> frozenset[str]:
        out: set[str] = set()
        stack = list(self.children.get(mid, ()))
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(self.children.get(c, ()))
        return frozenset(out)

    def find(self, name: str) -> str:
        """MID of the class with this exact name."""
        for mid, n in self.names.items():
            if n == name:
                return mid
        raise KeyError(f"no AudioSet class named {name!r}")


def load_ontology(spec: str | os.PathLike[str] = ONTOLOGY_URL) -> Ontology:
    path = resolve_source(spec, what="the AudioSet ontology")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable AudioSet ontology.json: {exc}") from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
        raise SourceError(f"{path}: not an AudioSet ontology: expected a list of classes with 'id'")
    return Ontology.from_entries(entries)
