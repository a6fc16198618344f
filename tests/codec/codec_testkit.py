"""Synthesised music (the demo's styles) as audio shards, and the codec tests' training settings. A module of
its own, not the conftest: `from conftest import` finds whichever folder's conftest was imported last."""

from __future__ import annotations

import io
import json

import numpy as np
import soundfile as sf

from cadenza.formats import shards, storage

SR = 32_000
STYLES = ["hindustani", "chiptune", "house", "gamelan"]


def clip_key(i: int) -> str:
    return f"clip{i:07d}_00000000_00004000"


def flac_sample(key: str, audio: np.ndarray, caption: str) -> dict:
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="FLAC", subtype="PCM_16")
    meta = {"ytid": key[:11], "key": key, "caption": caption, "sample_rate": SR, "num_samples": int(audio.size)}
    return {"__key__": key, "flac": buf.getvalue(), "txt": caption, "json": json.dumps(meta)}


def write_audio_dir(root, per_shard: list[list[tuple[str, np.ndarray, str]]]) -> str:
    for i, clips in enumerate(per_shard):
        samples = [flac_sample(k, a, c) for k, a, c in clips]
        shards.write_shard(str(root / "shards" / shards.shard_name("audio", i)), samples, {"samples": len(samples)})
    storage.write_json_atomic(str(root / "manifest.json"), {"kind": "audio", "clips_written": sum(map(len, per_shard))})
    return str(root)


def styled_clips(n: int, seconds: float = 4.0) -> list[tuple[str, np.ndarray, str]]:
    from cadenza.demo.synth import render

    return [(clip_key(i), render(STYLES[i % len(STYLES)], seed=i, duration_s=seconds, sr=SR), STYLES[i % len(STYLES)])
            for i in range(n)]


TEST_STEPS = dict(steps=300, batch_size=8, segment_seconds=0.5, val_every=150, ckpt_every=150, max_val_clips=4)
