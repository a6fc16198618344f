"""One way to build a config dataclass from a dict: unknown keys are an error, never dropped."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict_strict(cls: type[T], d: dict[str, Any]) -> T:
    """`cls(**d)`, refusing keys `cls` does not have (a typo would otherwise be silently ignored)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if unknown := sorted(set(d) - names):
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**d)
