"""One way to build a config dataclass from a dict: unknown keys are an error, never dropped."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Self, TypeVar

T = TypeVar("T")


def from_dict_strict(cls: type[T], d: dict[str, Any]) -> T:
    """`cls(**d)`, refusing keys `cls` does not have (a typo would otherwise be silently ignored)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if unknown := sorted(set(d) - names):
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**d)


class StageConfig:
    """Base of a stage's config dataclass (`@dataclass class IngestConfig(StageConfig)`): the dict it is
    saved as and read back from (JSON, a DAG's params), strict on unknown keys, and a `validate` hook.

    A config whose fields do not round-trip through JSON as they are (a tuple, a nested config)
    converts them in its own to_dict / from_dict and calls these.
    """

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return from_dict_strict(cls, d)

    def validate(self) -> None:
        """Raise ValueError, naming the CLI option, for a value out of range; a config without checks has none."""
