"""Audio shards of synthesised music (the demo's styles) and a codec trained on them, shared by the codec tests."""

from __future__ import annotations

import json
import os

import pytest
from codec_testkit import TEST_STEPS, styled_clips, write_audio_dir


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
