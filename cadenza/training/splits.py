"""Train / held-out views of one token directory, so evaluation never sees the clips training saw.

A view is a directory shaped like a tokenize output (manifest.json, shards/, stats/, samples/, codec/ when
present) whose entries are *relative* symbolic links into the original, so no token data is copied and a
copy of the whole tree (views and tokens together, `cp -a`, rsync, tar) still reads wherever it lands. A
copy that follows links (`cp -rL`, `shutil.copytree`) holds the files themselves and reads on its own.
Shards are split whole: the last `heldout_shards` complete shards (in name order, which is the ingest's
stable order) are held out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cadenza.shard_index import write_dataset_card
from cadenza.shards import (
    SAMPLES_DIR,
    STATS_DIR,
    find_stats,
    list_shards,
    read_json,
    samples_table_path,
    write_json_atomic,
)

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


def split_token_dir(tokens_dir: str, train_dir: str, heldout_dir: str, heldout_shards: int = 1) -> dict[str, Any]:
    """Make `train_dir` and `heldout_dir` views of `tokens_dir`; returns their shard counts."""
    tokens = Path(tokens_dir)
    manifest = read_json(str(tokens / "manifest.json"))
    shard_paths = list_shards(str(tokens / "shards"))
    if len(shard_paths) < 2:
        raise ValueError(f"{tokens_dir}: {len(shard_paths)} complete shard(s); a held-out split needs at least 2")
    n_held = min(max(1, heldout_shards), len(shard_paths) - 1)
    _make_view(tokens, Path(train_dir), shard_paths[:-n_held], manifest, "train")
    _make_view(tokens, Path(heldout_dir), shard_paths[-n_held:], manifest, "heldout")
    return {"train": train_dir, "heldout": heldout_dir, "train_shards": len(shard_paths) - n_held,
            "heldout_shards": n_held}
