"""EnCodec encoder variants: the exact ones give eager fp32's codes; `onnx`, a variant that may change
codes, changes none of a trained codec's on the benchmark's clips (the rule for a variant allows 2%),
gives the same codes run to run, and names itself in the tokenizer fingerprint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.tokenizers.acoustic_loading import load_acoustic
from cadenza.tokenizers.encodec_variant_names import EXACT, VARIANTS
from cadenza.tokenizers.random_codec import synthetic_calibration_audio

APPROXIMATE = sorted(set(VARIANTS) - EXACT)

torch.set_num_threads(1)  # codes depend on the thread count; tokenize runs one thread per worker
ROOT = Path(__file__).resolve().parents[2]


def bench_clips(count: int, seconds: float) -> list[np.ndarray]:
    """The clips benchmarks/bench_tokenize.py measures variants on (the same generator and seeds)."""
    spec = importlib.util.spec_from_file_location("bench_tokenize", ROOT / "benchmarks" / "bench_tokenize.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return [bench.music_like(24_000, seconds, i) for i in range(count)]


def encode_all(tok, variant: str, clips: list[np.ndarray]) -> list[np.ndarray]:
    tok.optimize = variant
    return tok.encode(clips)


@pytest.mark.parametrize("name", ["encodec_24khz", "encodec_32khz"])  # causal and non-causal conv padding
def test_exact_variants_give_eager_codes_at_any_length(name):
    rate = 24_000 if name == "encodec_24khz" else 32_000
    tok = load_acoustic(name, random_init=True, small=True, optimize="eager",
                        calibration=synthetic_calibration_audio(rate, seconds=1.0, count=3))
    rng = np.random.default_rng(0)
    # lengths that are not multiples of the hop exercise the extra right padding of strided convs
    clips = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in (rate // 10 + 7, rate + 331, 2 * rate - 1)]
    eager = encode_all(tok, "eager", clips)
    assert len(np.unique(eager[1][0])) > 3  # codes that carry information, so equality means something
    for variant in sorted(EXACT - {"eager"}):
        for a, b in zip(eager, encode_all(tok, variant, clips), strict=True):
            assert a.shape == b.shape and np.array_equal(a, b), variant
        assert tok.fingerprint() == tok.describe()["weights_fingerprint"]  # same codes, same fingerprint


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="optimize must be one of"):
        load_acoustic("encodec_24khz", random_init=True, small=True, optimize="fast",
                      calibration=synthetic_calibration_audio(24_000, seconds=1.0, count=2))


def test_onnx_runtime_variant_repeats_itself_and_names_itself():
    pytest.importorskip("onnxruntime")
    tok = load_acoustic("encodec_24khz", random_init=True, small=True, optimize="onnx",
                        calibration=synthetic_calibration_audio(24_000, seconds=1.0, count=3))
    clips = synthetic_calibration_audio(24_000, seconds=1.5, count=2, seed=7)
    first = tok.encode(clips)
    assert all(a.shape == (8, 113) and a.dtype == np.int16 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, tok.encode(clips), strict=True))
    desc = tok.describe()
    assert desc["variant"] == "onnx" and desc["fingerprint"] == f"{desc['weights_fingerprint']}-onnx"


@pytest.fixture(scope="module")
def trained_codec(tmp_path_factory) -> str:
    """A `demo` codec trained briefly (real training steps) on the demo's synthesised styles."""
    import io
    import json

    import soundfile as sf

    from cadenza.codec.trainer import CodecTrainConfig, train_codec
    from cadenza.demo.synth import render
    from cadenza.formats import shards

    root = tmp_path_factory.mktemp("variant-codec")
    styles = ["hindustani", "chiptune", "house", "gamelan"]
    for shard in range(2):
        samples = []
        for i in range(4):
            key = f"clip{shard * 4 + i:07d}_00000000_00004000"
            buf = io.BytesIO()
            sf.write(buf, render(styles[i], seed=shard * 4 + i, duration_s=3.0, sr=32_000), 32_000, format="FLAC")
            samples.append({"__key__": key, "flac": buf.getvalue(), "txt": styles[i],
                            "json": json.dumps({"key": key, "caption": styles[i], "sample_rate": 32_000})})
        shards.write_shard(str(root / "audio" / "shards" / shards.shard_name("audio", shard)), samples,
                           {"samples": len(samples)})
    out = str(root / "codec")
    train_codec(CodecTrainConfig(shards=str(root / "audio"), out=out, preset="demo", steps=80, batch_size=8,
                                 segment_seconds=0.5, val_every=80, ckpt_every=80, max_val_clips=2,
                                 progress=False))
    return out


@pytest.mark.slow  # trains a codec: minutes on a shared 2-core machine
@pytest.mark.parametrize("variant", APPROXIMATE)
def test_variant_changes_none_of_a_trained_codecs_codes_the_same_way_every_run(trained_codec, variant):
    if variant == "onnx":
        pytest.importorskip("onnxruntime")
    clips = bench_clips(4, 10.0)
    tok = load_acoustic("encodec_24khz", weights=trained_codec, optimize="eager")
    eager = encode_all(tok, "eager", clips)
    fast = encode_all(tok, variant, clips)
    assert all(a.shape == b.shape for a, b in zip(eager, fast, strict=True))
    assert len(np.unique(eager[0][0])) > 3  # codes that carry information, so equality means something
    # README: none of a trained codec's codes change (5% of a random-weight one's, in benchmarks/bench_tokenize.py)
    changed = sum(int((a != b).sum()) for a, b in zip(eager, fast, strict=True))
    assert changed == 0, f"{variant} changed {changed} of {sum(a.size for a in eager)} codes"
    # run to run: the same clips again, and a freshly built encoder in a new tokenizer
    assert all(np.array_equal(a, b) for a, b in zip(fast, tok.encode(clips), strict=True))
    fresh = load_acoustic("encodec_24khz", weights=trained_codec, optimize=variant)
    assert all(np.array_equal(a, b) for a, b in zip(fast, fresh.encode(clips), strict=True))
    # its tokens are told apart from eager ones, and the fingerprint says why
    desc = fresh.describe()
    assert desc["variant"] == variant
    assert desc["fingerprint"] == f"{desc['weights_fingerprint']}-{variant}" != tok.describe()["weights_fingerprint"]
