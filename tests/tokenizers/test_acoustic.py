"""EnCodec acoustic tokenizer: shapes, ranges, determinism, speed-ups that keep codes, weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadenza.tokenizers.acoustic import CODECS, AcousticWeightsError, CodecSpec
from cadenza.tokenizers.acoustic_loading import load_acoustic
from cadenza.tokenizers.base import AcousticTokenizer
from cadenza.tokenizers.random_codec import synthetic_calibration_audio

torch.set_num_threads(1)  # one thread: faster than two on a shared 2-core box, and codes depend on it


def tone(sr: int, seconds: float, f0: float = 330.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    y = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 2.5 * f0 * t) + 0.05 * rng.standard_normal(t.size)
    return (0.4 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def small24():
    return load_acoustic("encodec_24khz", random_init=True, small=True,
                         calibration=synthetic_calibration_audio(24_000, seconds=2.0, count=4))


@pytest.mark.parametrize(
    ("name", "shape", "vocab"), [("encodec_24khz", (8, 750), 1024), ("encodec_32khz", (4, 500), 2048)]
)
def test_real_architecture_shapes_for_10s(name, shape, vocab):
    spec = CODECS[name]
    # optimize="fold": the trace is checked against eager codes on the small model below
    tok = load_acoustic(name, random_init=True, optimize="fold",
                        calibration=synthetic_calibration_audio(spec.config.get("sampling_rate", 24_000), seconds=1.0,
                                                                count=3))
    assert isinstance(tok, AcousticTokenizer)
    assert (tok.num_codebooks, tok.vocab_size) == (shape[0], vocab)
    assert tok.frame_rate == shape[1] / 10
    audio = tone(tok.sample_rate, 10.0)
    codes = tok.encode([audio])[0]
    assert codes.shape == shape and codes.dtype == np.int16
    assert 0 <= codes.min() and codes.max() < vocab
    # k-means codebooks: codes carry information (a zero-initialised codebook would give all zeros)
    assert len(np.unique(codes[0])) > 5
    assert np.array_equal(codes, tok.encode([audio])[0])
    desc = tok.describe()
    assert desc["random_weights"] is True and desc["fingerprint"] == tok.fingerprint()


def test_random_codec_is_reproducible_from_its_seed(small24):
    again = load_acoustic("encodec_24khz", random_init=True, small=True,
                          calibration=synthetic_calibration_audio(24_000, seconds=2.0, count=4))
    assert again.fingerprint() == small24.fingerprint()
    other = load_acoustic("encodec_24khz", random_init=True, small=True, seed=1,
                          calibration=synthetic_calibration_audio(24_000, seconds=2.0, count=4))
    assert other.fingerprint() != small24.fingerprint()


def test_speedups_and_batching_leave_codes_unchanged(small24):
    clips = [tone(24_000, 1.0, f0=220), tone(24_000, 1.3, f0=660, seed=1), tone(24_000, 1.0, f0=440, seed=2)]
    results = {}
    for mode in ("eager", "fold", "trace"):
        small24.optimize = mode
        results[mode] = small24.encode(clips)
    small24.optimize = "trace"
    for mode in ("fold", "trace"):
        for a, b in zip(results["eager"], results[mode], strict=True):
            assert np.array_equal(a, b), mode
    # a clip's codes do not depend on its neighbours in the bundle
    alone = small24.encode([clips[2]])[0]
    assert np.array_equal(alone, results["trace"][2])
    assert results["eager"][1].shape == (8, int(np.ceil(1.3 * 24_000 / 320)))


def test_save_pretrained_round_trip_gives_same_codes(small24, tmp_path):
    small24.save(tmp_path / "codec")
    loaded = load_acoustic("encodec_24khz", weights=tmp_path / "codec")
    assert loaded.fingerprint() == small24.fingerprint()
    assert loaded.random_weights is True  # the mark travels with the saved codec
    clip = tone(24_000, 1.0)
    assert np.array_equal(loaded.encode([clip])[0], small24.encode([clip])[0])


def test_decode_gives_audio_of_the_coded_length(small24):
    codes = small24.encode([tone(24_000, 1.0)])[0]
    audio = small24.decode(codes)
    assert audio.dtype == np.float32 and audio.shape == (codes.shape[1] * 320,)
    assert np.isfinite(audio).all()
    with pytest.raises(ValueError, match="codes must lie"):
        small24.decode(np.full_like(codes, 5000))


def test_missing_weights_name_the_model_and_how_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setitem(CODECS, "encodec_24khz", CodecSpec("cadenza-test/no-such-codec", 6.0))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AcousticWeightsError, match="cadenza-test/no-such-codec.*huggingface-cli download"):
        load_acoustic("encodec_24khz")
    with pytest.raises(AcousticWeightsError, match="no config.json"):
        load_acoustic("encodec_24khz", weights=tmp_path)


def test_wrong_codec_weights_and_bandwidth_are_refused(small24, tmp_path):
    small24.save(tmp_path / "codec24")
    with pytest.raises(AcousticWeightsError, match="not encodec_32khz"):
        load_acoustic("encodec_32khz", weights=tmp_path / "codec24")
    with pytest.raises(ValueError, match="bandwidth"):
        load_acoustic("encodec_24khz", weights=tmp_path / "codec24", bandwidth=5.0)
