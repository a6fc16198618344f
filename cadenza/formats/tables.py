"""Parquet tables of what the shards hold: one row per sample (status "success") or per failure ("failed").

The columns follow what img2dataset / video2dataset users look for (key, url, caption, status, error_message)
plus MusicCaps' window, labels and the ingest's quality stats. Audio and token shards share one schema, so
tables of any shards concatenate, and `samples.parquet` over a whole output dir is a plain union. Pure
functions of the samples and failure records: the same shard always gives the same bytes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SUCCESS, FAILED = "success", "failed"
QUALITY_FIELDS = ("rms_dbfs", "peak", "silence_fraction", "clipping_fraction")

SCHEMA = pa.schema([
    ("key", pa.string()),
    ("shard", pa.string()),
    ("status", pa.string()),
    ("ytid", pa.string()),
    ("row", pa.int64()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("caption", pa.string()),
    ("url", pa.string()),
    ("labels", pa.list_(pa.string())),
    ("label_names", pa.list_(pa.string())),
    ("aspect_list", pa.list_(pa.string())),
    ("duration_s", pa.float64()),
    ("sample_rate", pa.int64()),
    *[(f, pa.float64()) for f in QUALITY_FIELDS],
    ("semantic_frames", pa.int64()),
    ("acoustic_frames", pa.int64()),
    ("bytes", pa.int64()),  # of the sample's members in the tar
    ("stage", pa.string()),
    ("category", pa.string()),
    ("error_message", pa.string()),
    ("attempts", pa.int64()),
])


def _meta(sample: dict[str, Any]) -> dict[str, Any]:
    raw = sample.get("json")
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}  # the row still counts the sample; its metadata columns stay empty
    return meta if isinstance(meta, dict) else {}


def _text(sample: dict[str, Any], meta: dict[str, Any]) -> str | None:
    for value in (meta.get("text"), meta.get("caption"), sample.get("txt")):
        if value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def _strings(value: Any) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, list | tuple) else None


def _num(value: Any, kind: type) -> Any:
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def sample_row(sample: dict[str, Any], shard: str) -> dict[str, Any]:
    """The table row of one tar sample ({"__key__", ext: bytes|str, ...})."""
    meta = _meta(sample)
    quality = meta.get("quality") if isinstance(meta.get("quality"), dict) else {}
    frames = meta.get("num_frames") if isinstance(meta.get("num_frames"), dict) else {}
    size = sum(len(v.encode("utf-8") if isinstance(v, str) else v)
               for k, v in sample.items() if not k.startswith("__"))
    return {
        "key": sample["__key__"], "shard": shard, "status": SUCCESS,
        "ytid": _num(meta.get("ytid"), str), "row": _num(meta.get("row"), int),
        "start_s": _num(meta.get("start_s"), float), "end_s": _num(meta.get("end_s"), float),
        "caption": _text(sample, meta), "url": _num(meta.get("url") or meta.get("source_url"), str),
        "labels": _strings(meta.get("audioset_labels")), "label_names": _strings(meta.get("audioset_label_names")),
        "aspect_list": _strings(meta.get("aspect_list")),
        "duration_s": _num(meta.get("duration_s"), float), "sample_rate": _num(meta.get("sample_rate"), int),
        **{f: _num(quality.get(f), float) for f in QUALITY_FIELDS},
        "semantic_frames": _num(frames.get("semantic"), int), "acoustic_frames": _num(frames.get("acoustic"), int),
        "bytes": size,
    }


def failure_row(record: dict[str, Any]) -> dict[str, Any]:
    """The table row of one FailureRecord dict."""
    extra = record.get("extra") or {}
    window = extra.get("window") if isinstance(extra.get("window"), list) and len(extra["window"]) == 2 else None
    return {
        "key": record.get("key"), "shard": record.get("shard") or None, "status": FAILED,
        "ytid": record.get("ytid") or None, "row": _num(record.get("row"), int),
        "start_s": _num(window[0], float) if window else None, "end_s": _num(window[1], float) if window else None,
        "url": extra.get("source_url") or None, "stage": record.get("stage"), "category": record.get("category"),
        "error_message": record.get("message"), "attempts": _num(record.get("attempts"), int),
    }


def table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


def parquet_bytes(tbl: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(tbl, buf, compression="zstd")
    return buf.getvalue()


def samples_parquet(samples: Iterable[dict[str, Any]], shard: str) -> bytes:
    return parquet_bytes(table(sample_row(s, shard) for s in sorted(samples, key=lambda s: s["__key__"])))


def failures_parquet(records: Iterable[dict[str, Any]]) -> bytes:
    return parquet_bytes(table(failure_row(r) for r in sorted(records, key=lambda r: r.get("key") or "")))
