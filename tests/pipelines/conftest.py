"""Small audio shards in the ingest contract, built from synthesized audio (no ingest run needed)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from cadenza.formats import shards, storage

SR = 32_000


def synth(kind: str, seconds: float, *, f0: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    if kind == "sine":
        y = np.sin(2 * np.pi * f0 * t)
    elif kind == "saw":
        y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12))
    elif kind == "noise":
        y = rng.standard_normal(t.size)
    else:
        raise ValueError(kind)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def audio_sample(key: str, audio: np.ndarray, caption: str, row: int) -> dict:
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="FLAC", subtype="PCM_16")
    meta = {"ytid": key[:11], "key": key, "row": row, "caption": caption, "aspect_list": ["synth", "test"],
            "sample_rate": SR, "num_samples": int(audio.size), "duration_s": audio.size / SR}
    return {"__key__": key, "flac": buf.getvalue(), "txt": caption, "json": json.dumps(meta)}


def write_audio_dir(root, clips_per_shard: list[list[tuple[str, np.ndarray, str]]]) -> str:
    """clips_per_shard: per shard, (key, audio or raw flac bytes, caption)."""
    row = 0
    for i, clips in enumerate(clips_per_shard):
        samples = []
        for key, audio, caption in clips:
            row += 1
            if isinstance(audio, bytes):  # a corrupt clip
                samples.append({"__key__": key, "flac": audio, "txt": caption, "json": json.dumps({"row": row})})
            else:
                samples.append(audio_sample(key, audio, caption, row))
        shards.write_shard(str(root / "shards" / shards.shard_name("audio", i)), samples, {"samples": len(samples)})
    storage.write_json_atomic(str(root / "manifest.json"), {"kind": "audio", "clips_written": row})
    return str(root)


@pytest.fixture
def small_audio_dir(tmp_path):
    """Two shards, 5 clips of 2 s (one corrupt) - enough for a tiny k-means and a random codec."""
    return write_audio_dir(
        tmp_path / "audio",
        [
            [("aaaaaaaaaaa_00000000_00002000", synth("sine", 2.0, f0=220), "a pure low tone"),
             ("bbbbbbbbbbb_00000000_00002000", synth("saw", 2.0, f0=440), "a bright buzzy tone"),
             ("ccccccccccc_00000000_00002000", b"not a flac file", "broken clip")],
            [("ddddddddddd_00000000_00002000", synth("noise", 2.0), "white noise"),
             ("eeeeeeeeeee_00000000_00002000", synth("sine", 2.0, f0=880), "a high tone")],
        ],
    )
