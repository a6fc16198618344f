"""Train / held-out views of one token directory, so evaluation never sees the clips training saw.

A view is a directory shaped like a tokenize output (manifest.json, shards/, stats/, samples/, codec/ when
present) whose entries are *relative* symbolic links into the original, so no token data is copied and a
copy of the whole tree (views and tokens together, `cp -a`, rsync, tar) still reads wherever it lands. A
copy that follows links (`cp -rL`, `shutil.copytree`) holds the files themselves and reads on its own.
Shards are split whole: the last `heldout_shards` complete shards (in name order, which is the ingest's
stable order) are held out.
Or, with holdout_by="annotator", every clip of some annotators is held out (split_by_annotator).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cadenza.formats.index import write_dataset_card
from cadenza.formats.shards import (
    SAMPLES_DIR,
    STATS_DIR,
    find_stats,
    iter_tar_samples,
    list_shards,
    samples_table_path,
    write_shard,
)
from cadenza.formats.storage import read_json, write_json_atomic

SHARED_ENTRIES = ("codec", "kmeans.npz", "tokenizers.json")  # what sampling/decoding reads besides shards


def _link(src: Path, dst: Path) -> None:
    """dst -> src, as a path relative to dst's directory."""
    target = os.path.relpath(src.resolve(), dst.parent.resolve())
    if dst.is_symlink() or dst.exists():
        if dst.is_symlink() and os.readlink(dst) == target:
            return
        dst.unlink()
    dst.symlink_to(target)


def _prune(directory: Path, keep: set[str]) -> None:
    """A rerun with another split leaves no stale links behind (nor old-layout stats links)."""
    for old in directory.iterdir() if directory.is_dir() else []:
        if old.name not in keep:
            old.unlink()


def _make_view(tokens: Path, view: Path, shard_paths: list[str], manifest: dict[str, Any], split: str) -> None:
    for sub in ("shards", STATS_DIR, SAMPLES_DIR):
        (view / sub).mkdir(parents=True, exist_ok=True)
    wanted = {Path(p).name for p in shard_paths}
    stems = {n.removesuffix(".tar") for n in wanted}
    _prune(view / "shards", wanted)
    _prune(view / STATS_DIR, {f"{s}.stats.json" for s in stems})
    _prune(view / SAMPLES_DIR, {f"{s}.parquet" for s in stems})
    for p in shard_paths:
        name = Path(p).name
        _link(Path(p), view / "shards" / name)
        stats = find_stats(p)
        if stats is not None:
            _link(Path(stats), view / STATS_DIR / (name.removesuffix(".tar") + ".stats.json"))
        if (table := Path(samples_table_path(p))).exists():
            _link(table, view / SAMPLES_DIR / table.name)
    for entry in SHARED_ENTRIES:
        if (tokens / entry).exists():
            _link(tokens / entry, view / entry)
    write_dataset_card(str(view))
    write_json_atomic(str(view / "manifest.json"), {
        **manifest, "shards": sorted(wanted),
        "split": {"of": os.path.relpath(tokens.resolve(), view.resolve()), "name": split},
    })


def split_token_dir(tokens_dir: str, train_dir: str, heldout_dir: str, heldout_shards: int = 1, *,
                    holdout_by: str = "shard", audit_dir: str | None = None,
                    heldout_fraction: float = 0.25) -> dict[str, Any]:
    """Make `train_dir` and `heldout_dir` views of `tokens_dir`. holdout_by "shard": the last
    `heldout_shards` shards are held out (symlinks); "annotator": every clip of the annotators chosen by
    split_by_annotator (needs `audit_dir`)."""
    if holdout_by not in HOLDOUT_BY:
        raise ValueError(f"holdout_by must be one of {', '.join(HOLDOUT_BY)} (got {holdout_by!r})")
    if holdout_by == "annotator":
        if not audit_dir:
            raise ValueError("holdout_by annotator needs the audit dir (its assignments.jsonl names each annotator)")
        return split_by_annotator(tokens_dir, train_dir, heldout_dir, audit_dir, heldout_fraction=heldout_fraction)
    tokens = Path(tokens_dir)
    manifest = read_json(str(tokens / "manifest.json"))
    shard_paths = list_shards(str(tokens / "shards"))
    if len(shard_paths) < 2:
        raise ValueError(f"{tokens_dir}: {len(shard_paths)} complete shard(s); a held-out split needs at least 2")
    n_held = min(max(1, heldout_shards), len(shard_paths) - 1)
    _make_view(tokens, Path(train_dir), shard_paths[:-n_held], manifest, "train")
    _make_view(tokens, Path(heldout_dir), shard_paths[-n_held:], manifest, "heldout")
    return {"train": train_dir, "heldout": heldout_dir, "train_shards": len(shard_paths) - n_held,
            "heldout_shards": n_held, "holdout_by": "shard"}


HOLDOUT_BY = ("shard", "annotator")


def _sample_ytid(sample: dict[str, Any]) -> str:
    try:
        return str(json.loads(sample["json"])["ytid"])
    except (KeyError, ValueError, TypeError):
        return sample["__key__"][:11]  # keys are "<ytid>_<start ms>_<end ms>"


def choose_heldout_annotators(clips_per_annotator: dict[int, int], fraction: float) -> list[int]:
    """Annotators whose clips together come closest to `fraction` of the clips without passing it (at least
    one, never all), smallest first so that many styles are held out; ties by id."""
    if len(clips_per_annotator) < 2:
        raise ValueError(f"an annotator hold-out needs clips from at least 2 annotators (found "
                         f"{len(clips_per_annotator)})")
    total, chosen, held = sum(clips_per_annotator.values()), [], 0
    for author, n in sorted(clips_per_annotator.items(), key=lambda kv: (kv[1], kv[0])):
        if len(chosen) == len(clips_per_annotator) - 1:
            break
        if not chosen or held + n <= fraction * total:
            chosen.append(author)
            held += n
    return sorted(chosen)


def split_by_annotator(tokens_dir: str, train_dir: str, heldout_dir: str, audit_dir: str, *,
                       heldout_fraction: float = 0.25, annotators: list[int] | None = None) -> dict[str, Any]:
    """Hold out every clip of some annotators, so a model's held-out scores per group are not one
    annotator's captioning style it has learnt. Annotators come from the audit (assignments.jsonl); clips
    it does not know go to training. Shards are rewritten per split (clips of one shard can go both ways),
    so this view copies its token data."""
    from cadenza.formats.assignments import load_assignments

    tokens = Path(tokens_dir)
    manifest = read_json(str(tokens / "manifest.json"))
    shard_paths = list_shards(str(tokens / "shards"))
    author_of = {y: rec.get("author_id") for y, rec in load_assignments(Path(audit_dir).expanduser()).items()}
    per_shard = [[(s, author_of.get(_sample_ytid(s))) for s in iter_tar_samples(p)] for p in shard_paths]
    counts: dict[int, int] = {}
    for shard in per_shard:
        for _, author in shard:
            if author is not None:
                counts[author] = counts.get(author, 0) + 1
    held = sorted(annotators) if annotators else choose_heldout_annotators(counts, heldout_fraction)
    if unknown := sorted(set(held) - set(counts)):
        raise ValueError(f"annotator(s) {unknown} have no clips in {tokens_dir} (annotators there: {sorted(counts)})")
    if set(held) >= set(counts):
        raise ValueError("holding out every annotator leaves nothing to train on")
    written = {"train": 0, "heldout": 0}
    for split, view in (("train", Path(train_dir)), ("heldout", Path(heldout_dir))):
        (view / "shards").mkdir(parents=True, exist_ok=True)
        for old in (view / "shards").iterdir():  # a rerun leaves no stale shard or link behind
            old.unlink()
        names = []
        for path, shard in zip(shard_paths, per_shard, strict=True):
            mine = [s for s, author in shard if (author in held) == (split == "heldout")]
            if mine:
                name = Path(path).name
                write_shard(str(view / "shards" / name), [{k: v for k, v in s.items() if k != "__url__"}
                                                          for s in mine], {"samples": len(mine), "split_of": path})
                names.append(name)
                written[split] += len(mine)
        for entry in SHARED_ENTRIES:
            if (tokens / entry).exists():
                _link((tokens / entry).resolve(), view / entry)
        write_json_atomic(str(view / "manifest.json"), {
            **manifest, "shards": names,
            "split": {"of": str(tokens.resolve()), "name": split, "holdout_by": "annotator", "annotators": held},
        })
    if not written["heldout"] or not written["train"]:
        raise ValueError(f"annotator hold-out {held} leaves an empty split: {written}")
    return {"train": train_dir, "heldout": heldout_dir, "holdout_by": "annotator", "heldout_annotators": held,
            "train_clips": written["train"], "heldout_clips": written["heldout"],
            "unknown_annotator_clips": sum(1 for sh in per_shard for _, a in sh if a is None)}
