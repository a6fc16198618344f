"""Deterministic WebDataset shards and their completion markers (failure records are in `failures`).

Shared by every pipeline that writes shards (ingest, tokenize). Rules:
- a tar is written under a temporary name and renamed, so a visible `.tar` is always whole;
- members are sorted by sample key in the order given, with fixed mtime/owner/mode, so the same
  samples give byte-identical tars;
- `{name}.stats.json` is written after the tar and is the shard's completion marker: a shard without
  it is incomplete and is redone on resume.

Layout: a shard directory holds only `.tar` files, so WebDataset and Hugging Face `datasets` readers can be
pointed at it (or at a glob of it) as it is. Everything about a shard lives beside that directory:

    OUT/shards/audio-000000.tar          the samples (none when every row of the shard failed)
    OUT/stats/audio-000000.stats.json    completion marker and counts
    OUT/samples/audio-000000.parquet     one row per sample in the tar
    OUT/failures/audio-000000.jsonl      failure records (and .parquet, the same as a table)

Directories written before this layout kept the stats files among the tars; they are still read, and
`migrate_layout` moves them out. Paths may be local or any fsspec URL (gs://, s3://, memory://...).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable, Iterator
from typing import Any

from cadenza.formats.storage import exists, filesystem, join, read_json, write_bytes_atomic, write_json_atomic

STATS_SUFFIX = ".stats.json"
STATS_DIR = "stats"
SAMPLES_DIR = "samples"


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}.tar"


def tar_bytes(samples: Iterable[dict[str, Any]]) -> bytes:
    """Build a deterministic tar from WebDataset samples: {'__key__': k, ext: bytes, ...}.

    Samples are written in key order; members within a sample in the order their dict gives.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in sorted(samples, key=lambda s: s["__key__"]):
            key = sample["__key__"]
            if "." in key or "/" in key:
                raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
            for ext, data in sample.items():
                if ext.startswith("__"):
                    continue
                if isinstance(data, str):
                    data = data.encode("utf-8")
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                info.mtime = 0
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_shard(path: str, samples: Iterable[dict[str, Any]], stats: dict[str, Any]) -> None:
    """Write the tar atomically, then its samples table, then its stats file (the completion marker).

    A shard with no samples gets no tar (an empty tar breaks readers that infer types from the first
    file); its stats file says `"bytes": 0` and still marks it complete.
    """
    from cadenza.formats.tables import samples_parquet

    samples = sorted(samples, key=lambda s: s["__key__"])
    name = path.rsplit("/", 1)[-1]
    if samples:
        data = tar_bytes(samples)
        write_bytes_atomic(path, data)
    else:
        data = b""
        if exists(path):  # what an earlier run of this shard left
            fs, p = filesystem(path)
            fs.rm(p)
    write_bytes_atomic(samples_table_path(path), samples_parquet(samples, name))
    write_json_atomic(stats_path(path), {**stats, "bytes": len(data)})


def beside(shard_dir: str, sub: str) -> str:
    """`sub` next to the shard directory: OUT/stats for OUT/shards."""
    return join(posixpath.dirname(shard_dir.rstrip("/")) or ".", sub)


def shard_root(tar_path: str) -> str:
    """The directory holding the shard directory (OUT for OUT/shards/x.tar)."""
    return posixpath.dirname(posixpath.dirname(tar_path)) or "."


def stats_path(tar_path: str) -> str:
    """Where the shard's stats file is written: OUT/stats/NAME.stats.json for OUT/shards/NAME.tar."""
    stem = tar_path.rsplit("/", 1)[-1].removesuffix(".tar")
    return join(shard_root(tar_path), STATS_DIR, stem + STATS_SUFFIX)


def legacy_stats_path(tar_path: str) -> str:
    """Where directories written before the current layout keep it: beside the tar."""
    return tar_path.removesuffix(".tar") + STATS_SUFFIX


def samples_table_path(tar_path: str) -> str:
    stem = tar_path.rsplit("/", 1)[-1].removesuffix(".tar")
    return join(shard_root(tar_path), SAMPLES_DIR, stem + ".parquet")


def find_stats(tar_path: str) -> str | None:
    """The shard's stats file, in the current layout or the old one; None when the shard is unfinished."""
    for path in (stats_path(tar_path), legacy_stats_path(tar_path)):
        if exists(path):
            return path
    return None


def read_stats(tar_path: str) -> dict[str, Any]:
    path = find_stats(tar_path)
    if path is None:
        raise FileNotFoundError(f"{tar_path}: no stats file (the shard is not finished)")
    return read_json(path)


def is_complete(tar_path: str) -> bool:
    """Its stats file exists, and so does its tar unless the stats say it has no samples."""
    path = find_stats(tar_path)
    if path is None:
        return False
    return exists(tar_path) or read_json(path).get("bytes") == 0


def list_shards(directory: str, *, complete_only: bool = True) -> list[str]:
    """Sorted tar paths in `directory` (with their URL scheme kept); only completed ones by default."""
    fs, p = filesystem(directory)
    if not fs.exists(p):
        return []
    # keep the caller's spelling of the directory (scheme included) so paths round-trip
    names = sorted(f.rsplit("/", 1)[-1] for f in fs.ls(p, detail=False) if f.endswith(".tar"))
    out = [join(directory, n) for n in names]
    return [t for t in out if is_complete(t)] if complete_only else out


def finished_shard_names(directory: str) -> list[str]:
    """Names (NAME.tar) of every finished shard of `directory`, those without a tar included."""
    fs, p = filesystem(beside(directory, STATS_DIR))
    found = {t.rsplit("/", 1)[-1] for t in list_shards(directory)}
    if fs.exists(p):
        found |= {f.rsplit("/", 1)[-1].removesuffix(STATS_SUFFIX) + ".tar"
                  for f in fs.ls(p, detail=False) if f.endswith(STATS_SUFFIX)}
    return sorted(found)


def migrate_layout(directory: str) -> list[str]:
    """Move the stats files of an old-layout shard directory out of it, and drop the empty tars it kept for
    shards whose every row failed. Safe to interrupt and rerun. Returns the names it changed."""
    fs, p = filesystem(directory)
    if not fs.exists(p):
        return []
    changed = []
    for f in sorted(fs.ls(p, detail=False)):
        name = f.rsplit("/", 1)[-1]
        if not name.endswith(STATS_SUFFIX):
            continue
        tar = join(directory, name.removesuffix(STATS_SUFFIX) + ".tar")
        # a stats file already in place (a migration cut short, or a newer run) is the one that counts
        stats = read_json(stats_path(tar) if exists(stats_path(tar)) else join(directory, name))
        try:
            empty = exists(tar) and not any(True for _ in iter_tar_samples(tar))
        except (ValueError, tarfile.TarError, OSError):
            empty = False  # a damaged tar is the readers' to report, not the migration's to delete
        if empty:
            stats["bytes"] = 0
        write_json_atomic(stats_path(tar), stats)  # the new marker first: a kill leaves the shard complete
        if empty:
            fs.rm(filesystem(tar)[1])
        fs.rm(f)
        changed.append(name.removesuffix(STATS_SUFFIX) + ".tar")
    return changed


def iter_tar_samples(path: str) -> Iterator[dict[str, Any]]:
    """Group a tar's regular-file members into samples by key (the name up to its first dot).

    Only regular files with plain relative names are read; anything else (links, devices, absolute
    or '..' names) raises ValueError naming the member. So does a key seen twice: the first copy stands
    and is yielded, the second is never merged into it or silently dropped.
    """
    fs, p = filesystem(path)
    with fs.open(p, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        current: dict[str, Any] | None = None
        seen: set[str] = set()
        for member in tar:
            name = member.name
            if not member.isfile() or name.startswith("/") or ".." in name.split("/"):
                if current is not None:  # whole samples read before the refused member still count
                    yield current
                raise ValueError(f"{path}: refusing tar member {name!r} (not a plain relative file)")
            base = name.rsplit("/", 1)[-1]
            key, _, ext = base.partition(".")
            if current is None or current["__key__"] != key or ext in current:
                if current is not None:
                    yield current
                if key in seen:  # the first copy stands; the rest of the shard is refused
                    raise ValueError(f"{path}: refusing tar member {name!r} (duplicate sample key {key!r})")
                seen.add(key)
                current = {"__key__": key, "__url__": path}
            fobj = tar.extractfile(member)
            current[ext] = fobj.read() if fobj else b""
        if current is not None:
            yield current
