"""Split helpers: MusicCaps' balanced subset and the AudioSet eval/train origin of each clip."""

from __future__ import annotations

from collections.abc import Iterable

from cadenza.musiccaps.schema import ClipRecord

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
