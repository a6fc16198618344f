"""Audio shards of synthesised music (the demo's styles) and a codec trained on them, shared by the codec tests."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
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


def built_once(tmp_path_factory, name: str, build):
    """`build(dir)`'s JSON-able result, built once per test run: under pytest-xdist the first worker to get
    here builds it in the run's shared temp root (behind a file lock) and the others read its result."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent
    result = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not result.is_file():
            result.write_text(json.dumps(build(root / name)))
    return json.loads(result.read_text())


@pytest.fixture(scope="session")
def codec_audio_dir(tmp_path_factory) -> str:
    """4 shards x 4 clips of 4 s; the last shard is the codec's validation set."""
    clips = styled_clips(16)
    return built_once(tmp_path_factory, "codec-audio",
                      lambda d: write_audio_dir(d, [clips[i:i + 4] for i in range(0, 16, 4)]))


# enough steps for the decoder to listen to its codes (at ~150 steps two clips still decode alike)
TEST_STEPS = dict(steps=300, batch_size=8, segment_seconds=0.5, val_every=150, ckpt_every=150, max_val_clips=4)


@pytest.fixture(scope="session")
def trained_codec(codec_audio_dir, tmp_path_factory) -> tuple[str, dict]:
    """The `demo` preset trained briefly on the styled clips: (codec dir, training record)."""
    import torch

    from cadenza.codec.trainer import CodecTrainConfig, train_codec

    def build(root) -> list:
        torch.set_num_threads(1)
        out = str(root / "codec")
        return [out, train_codec(CodecTrainConfig(shards=codec_audio_dir, out=out, preset="demo", progress=False,
                                                  **TEST_STEPS))]

    out, record = built_once(tmp_path_factory, "trained-codec", build)
    return out, record
