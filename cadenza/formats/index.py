"""`samples.parquet` over a whole output dir, and rebuilding the per-shard tables of existing outputs.

The pipelines write each shard's samples table and failures table as they write the shard (see
`cadenza.formats.shards`); `write_samples_index` unions them into OUT/samples.parquet at the end of a run.
`rebuild_index` (the `cadenza index` command) does the same for directories written before those tables
existed: it migrates the old layout, then remakes every table from the tars and the failure records.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cadenza.formats import failures, shards, storage
from cadenza.formats.tables import SCHEMA, failures_parquet, parquet_bytes, samples_parquet

INDEX_FILE = "samples.parquet"
CARD_FILE = "README.md"
CARD_MARK = "<!-- written by cadenza: rewritten on each run -->"
# A Hugging Face dataset card whose `configs` point at the tars, so `load_dataset(OUT)` reads the shards
# rather than whichever file type (.json stats, .parquet tables) is most common under OUT.
CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: shards/*.tar
---
{mark}

WebDataset shards written by cadenza: `shards/*.tar` holds the samples; beside it `stats/` (completion
markers), `samples/` (a parquet table per shard), `manifest.json` and, for a whole output dir, `failures/`
and `samples.parquet` (one row per sample or failure).
"""


def _read(path: str) -> pa.Table:
    fs, p = storage.filesystem(path)
    with fs.open(p, "rb") as f:
        return pq.read_table(f, schema=SCHEMA)


def _samples_table(tar: str, *, rebuild: bool) -> pa.Table:
    """The shard's samples table; made from the tar when missing (shards an older version wrote) or asked."""
    path = shards.samples_table_path(tar)
    if rebuild or not storage.exists(path):
        samples = list(shards.iter_tar_samples(tar)) if storage.exists(tar) else []
        for s in samples:
            s.pop("__url__", None)
        storage.write_bytes_atomic(path, samples_parquet(samples, tar.rsplit("/", 1)[-1]))
    return _read(path)


def _failures_tables(out: str, *, rebuild: bool) -> list[pa.Table]:
    directory = storage.join(out, "failures")
    fs, p = storage.filesystem(directory)
    tables = []
    for f in sorted(fs.ls(p, detail=False)) if fs.exists(p) else []:
        if not f.endswith(".jsonl"):
            continue
        records = storage.join(directory, f.rsplit("/", 1)[-1])
        path = records.removesuffix(".jsonl") + ".parquet"
        if rebuild or not storage.exists(path):
            storage.write_bytes_atomic(path, failures_parquet(r.to_dict() for r in failures.read_failure_file(records)))
        tables.append(_read(path))
    return tables


def write_dataset_card(out: str) -> None:
    """OUT/README.md, a dataset card naming the tars as the data; a card that cadenza did not write is kept."""
    path = storage.join(out, CARD_FILE)
    if storage.exists(path):
        fs, p = storage.filesystem(path)
        if CARD_MARK not in fs.cat_file(p).decode("utf-8", "replace"):
            return
    storage.write_bytes_atomic(path, CARD.format(mark=CARD_MARK).encode())


def write_samples_index(out: str, *, rebuild: bool = False) -> dict[str, Any]:
    """OUT/samples.parquet: every finished shard's samples ("success") and every failure ("failed"), and
    the dataset card. Tables a shard lacks are made first; `rebuild` remakes them all."""
    shard_dir = storage.join(out, "shards")
    tables = [_samples_table(storage.join(shard_dir, name), rebuild=rebuild)
              for name in shards.finished_shard_names(shard_dir)]
    tables += _failures_tables(out, rebuild=rebuild)
    tbl = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    storage.write_bytes_atomic(storage.join(out, INDEX_FILE), parquet_bytes(tbl))
    write_dataset_card(out)
    statuses = tbl.column("status").to_pylist()
    return {"path": storage.join(out, INDEX_FILE), "rows": tbl.num_rows,
            "success": statuses.count("success"), "failed": statuses.count("failed")}


def rebuild_index(out: str) -> dict[str, Any]:
    """Migrate `out` to the current layout, remake every shard's samples table and every failures table
    from the tars and the .jsonl records, then write OUT/samples.parquet. Returns counts."""
    shard_dir = storage.join(out, "shards")
    if not storage.exists(shard_dir) and not storage.exists(storage.join(out, "failures")):
        raise FileNotFoundError(f"{out}: not a cadenza output dir (no shards/ or failures/ inside)")
    migrated = shards.migrate_layout(shard_dir)
    return {**write_samples_index(out, rebuild=True), "migrated_shards": len(migrated)}
