"""load_clips hands its caller the selected clips it could not read, with why, instead of dropping them unseen."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from cadenza.formats import shards
from cadenza.formats.audio import load_clips, select_clips


def _flac(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(seed).uniform(-0.5, 0.5, 3200).astype(np.float32), 32000, format="FLAC")
    return buf.getvalue()


def test_load_clips_reports_undecodable_and_missing_clips(tmp_path):
    good = [{"__key__": f"clip{i:07d}_00000000_00010000", "flac": _flac(i), "json": b"{}"} for i in range(3)]
    corrupt = {"__key__": "clip0000009_00000000_00010000", "flac": b"not a flac at all", "json": b"{}"}
    path = str(tmp_path / "shards" / shards.shard_name("audio", 0))
    shards.write_shard(path, [*good, corrupt], {"samples": 4})
    selection = [*select_clips([path], 100), (path, "clip0000077_00000000_00010000")]  # a key the shard lacks
    skipped: dict[str, str] = {}
    clips = list(load_clips(selection, skipped))
    assert sorted(k for k, _, _ in clips) == sorted(s["__key__"] for s in good)
    assert set(skipped) == {corrupt["__key__"], "clip0000077_00000000_00010000"}
    assert skipped[corrupt["__key__"]].startswith("cannot decode: ")
    assert skipped["clip0000077_00000000_00010000"] == "not in its shard"
    assert len(list(load_clips(selection))) == 3  # without a dict to fill: the same clips, as before
