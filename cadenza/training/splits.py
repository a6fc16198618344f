"""Train / held-out views of one token directory, so evaluation never sees the clips training saw.

A view is a directory shaped like a tokenize output (manifest.json, shards/, codec/ when present) whose
entries are symbolic links into the original, so no token data is copied. Shards are split whole: the
last `heldout_shards` complete shards (in name order, which is the ingest's stable order) are held out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cadenza.shards import STATS_SUFFIX, list_shards, read_json, write_json_atomic

SHARED_ENTRIES = ("codec", "kmeans.npz", "tokenizers.json")  # what sampling/decoding reads besides shards


def _link(src: Path, dst: Path) -> None:
    if dst.is_symlink() or dst.exists():
        if dst.is_symlink() and Path(os.readlink(dst)) == src:
            return
        dst.unlink()
    dst.symlink_to(src)


def _make_view(tokens: Path, view: Path, shard_paths: list[str], manifest: dict[str, Any], split: str) -> None:
    (view / "shards").mkdir(parents=True, exist_ok=True)
    wanted = {Path(p).name for p in shard_paths}
    for old in (view / "shards").iterdir():  # a rerun with another split leaves no stale links behind
        if old.name.removesuffix(STATS_SUFFIX).removesuffix(".tar") + ".tar" not in wanted:
            old.unlink()
    for p in map(Path, shard_paths):
        _link(p.resolve(), view / "shards" / p.name)
        stats = p.with_name(p.name.removesuffix(".tar") + STATS_SUFFIX)
        _link(stats.resolve(), view / "shards" / stats.name)
    for entry in SHARED_ENTRIES:
        if (tokens / entry).exists():
            _link((tokens / entry).resolve(), view / entry)
    write_json_atomic(str(view / "manifest.json"), {
        **manifest, "shards": sorted(wanted), "split": {"of": str(tokens.resolve()), "name": split},
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
