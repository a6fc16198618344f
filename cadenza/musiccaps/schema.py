"""Typed records for MusicCaps rows and the rows validation sets aside, and the subsets a row belongs to."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

CSV_COLUMNS = (
    "ytid",
    "start_s",
    "end_s",
    "audioset_positive_labels",
    "aspect_list",
    "caption",
    "author_id",
    "is_balanced_subset",
    "is_audioset_eval",
)

YTID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
MID_RE = re.compile(r"^/[mgt]/[0-9a-z_]{1,16}$")


def clip_key(ytid: str, start_s: float, end_s: float) -> str:
    """WebDataset sample key for a clip: no dots (webdataset splits keys on them), fixed width."""
    return f"{ytid}_{round(start_s * 1000):08d}_{round(end_s * 1000):08d}"


@dataclass(frozen=True)
class ClipRecord:
    """One valid MusicCaps row: a 10 s YouTube window with its caption and labels."""

    ytid: str
    start_s: float
    end_s: float
    audioset_labels: tuple[str, ...]
    aspect_list: tuple[str, ...]
    caption: str
    author_id: int
    is_balanced_subset: bool
    is_audioset_eval: bool
    row: int = 0  # 1-based data row in the source CSV (header excluded)

    @property
    def key(self) -> str:
        return clip_key(self.ytid, self.start_s, self.end_s)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def split(self) -> str:
        """AudioSet split the clip comes from: 'eval' or 'train'."""
        return "eval" if self.is_audioset_eval else "train"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["audioset_labels"] = list(self.audioset_labels)
        d["aspect_list"] = list(self.aspect_list)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipRecord:
        return cls(
            ytid=str(d["ytid"]),
            start_s=float(d["start_s"]),
            end_s=float(d["end_s"]),
            audioset_labels=tuple(d.get("audioset_labels", ())),
            aspect_list=tuple(d.get("aspect_list", ())),
            caption=str(d.get("caption", "")),
            author_id=int(d.get("author_id", -1)),
            is_balanced_subset=bool(d.get("is_balanced_subset", False)),
            is_audioset_eval=bool(d.get("is_audioset_eval", False)),
            row=int(d.get("row", 0)),
        )


@dataclass(frozen=True)
class Reject:
    """A row validation set aside, with where it was and why."""

    row: int  # 1-based data row (header excluded)
    line: int  # physical line in the file where the row ends
    field: str
    value: str
    reason: str
    ytid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reject:
        return cls(**{k: d[k] for k in ("row", "line", "field", "value", "reason")}, ytid=d.get("ytid", ""))

    def __str__(self) -> str:
        return f"row {self.row} (line {self.line}): {self.field}={self.value!r}: {self.reason}"


@dataclass
class ValidationResult:
    """Every data row of a CSV ends up in exactly one of `clips` or `rejects`."""

    source: str
    clips: list[ClipRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.clips) + len(self.rejects)

    def rejects_by_reason(self) -> dict[str, int]:
        """Counts keyed by the reason's category (the text before the first colon)."""
        return dict(Counter(r.reason.split(":", 1)[0] for r in self.rejects).most_common())

    def summary(self, ontology: Any | None = None) -> dict[str, Any]:
        labels = Counter(label for c in self.clips for label in c.audioset_labels)
        out: dict[str, Any] = {
            "source": self.source,
            "rows_read": self.rows_read,
            "valid": len(self.clips),
            "rejected": len(self.rejects),
            "rejected_by_reason": self.rejects_by_reason(),
            "splits": split_sizes(self.clips),
            "label_coverage": {
                "distinct_labels": len(labels),
                "clips_with_labels": sum(1 for c in self.clips if c.audioset_labels),
                "label_assignments": sum(labels.values()),
            },
        }
        if ontology is not None:
            known = [m for m in labels if m in ontology.names]
            out["label_coverage"].update(
                {
                    "labels_in_ontology": len(known),
                    "labels_not_in_ontology": sorted(set(labels) - set(known)),
                    "blacklisted_labels_used": sorted(m for m in labels if m in ontology.blacklisted),
                    "top_labels": [
                        {"mid": m, "name": ontology.names.get(m, "?"), "clips": n}
                        for m, n in labels.most_common(15)
                    ],
                }
            )
        return out


# MusicCaps' balanced subset and the AudioSet eval/train origin of each clip
SPLITS = ("balanced", "unbalanced", "audioset_eval", "audioset_train")


def balanced_subset(clips: Iterable[ClipRecord]) -> list[ClipRecord]:
    """The 1k-clip genre-balanced subset MusicCaps marks with is_balanced_subset."""
    return [c for c in clips if c.is_balanced_subset]


def audioset_eval(clips: Iterable[ClipRecord]) -> list[ClipRecord]:
    return [c for c in clips if c.is_audioset_eval]


def audioset_train(clips: Iterable[ClipRecord]) -> list[ClipRecord]:
    return [c for c in clips if not c.is_audioset_eval]


def split_of(clip: ClipRecord, split: str) -> bool:
    """Whether `clip` belongs to the named split (one of SPLITS)."""
    if split == "balanced":
        return clip.is_balanced_subset
    if split == "unbalanced":
        return not clip.is_balanced_subset
    if split == "audioset_eval":
        return clip.is_audioset_eval
    if split == "audioset_train":
        return not clip.is_audioset_eval
    raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def split_sizes(clips: Iterable[ClipRecord]) -> dict[str, int]:
    clips = list(clips)
    return {s: sum(1 for c in clips if split_of(c, s)) for s in SPLITS}
