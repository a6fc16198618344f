"""Tokenize with a batched EnCodec encode: a named variant, deterministic, close to one-at-a-time codes,
with the device recorded in the manifest and not in any fingerprint."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from cadenza.formats import shards
from cadenza.pipelines.tokenize.config import TokenizeConfig
from cadenza.pipelines.tokenize.run import run_tokenize
from cadenza.tokenizers.acoustic_loading import load_acoustic_for_tokens
from cadenza.tokenizers.base import TokenizerMismatchError

torch.set_num_threads(1)


def config(audio: str, out, **kw) -> TokenizeConfig:
    base = {"codec_random_init": True, "codec_small": True, "clusters": 8, "progress": False, "calibration_clips": 4,
            "text": "none", "device": "cpu"}
    return TokenizeConfig(shards=audio, out=str(out), **{**base, **kw})


def acoustic_codes(out) -> dict[str, np.ndarray]:
    return {s["__key__"]: np.load(io.BytesIO(s["acoustic.npy"])) for tar in shards.list_shards(f"{out}/shards")
            for s in shards.iter_tar_samples(tar)}


def clip_audio(audio_dir: str, rate: int) -> dict[str, np.ndarray]:
    import librosa

    from cadenza.formats.audio import decode_audio

    out = {}
    for tar in shards.list_shards(f"{audio_dir}/shards"):
        for sample in shards.iter_tar_samples(tar):
            try:
                audio, sr = decode_audio(sample)
            except Exception:  # noqa: BLE001,S112 (the corrupt clip: a failure in both runs)
                continue
            out[sample["__key__"]] = librosa.resample(audio, orig_sr=sr, target_sr=rate)
    return out


def test_batched_encode_is_a_named_deterministic_variant(small_audio_dir, tmp_path):
    reference = run_tokenize(config(small_audio_dir, tmp_path / "one", codec_batch=1))
    batched = run_tokenize(config(small_audio_dir, tmp_path / "batched", codec_batch=4))
    ref_ac, bat_ac = reference["tokenizers"]["acoustic"], batched["tokenizers"]["acoustic"]
    assert batched["device"] == reference["device"] == "cpu" and batched["config"]["codec_batch"] == 4
    assert bat_ac["encode"]["batch"] == 4 and ref_ac["encode"]["batch"] == 1
    assert bat_ac["weights_fingerprint"] == ref_ac["weights_fingerprint"] == ref_ac["fingerprint"]
    assert bat_ac["fingerprint"] != ref_ac["fingerprint"]

    one, many = acoustic_codes(tmp_path / "one"), acoustic_codes(tmp_path / "batched")
    assert sorted(one) == sorted(many) and len(many) == 4
    assert all(many[k].shape == one[k].shape == (8, 150) for k in many)
    # the shards hold exactly what the variant gives each clip (cropped to its frames, in its place); the
    # share changed against one-at-a-time depends on the codec: this 4-clip random one has near-duplicate
    # codewords, so it is measured on better codecs (tests/tokenizers, benchmarks/bench_gpu.py)
    codec = load_acoustic_for_tokens(str(tmp_path / "batched"))
    assert codec.fingerprint() == bat_ac["fingerprint"]
    for key, audio in clip_audio(small_audio_dir, codec.sample_rate).items():
        assert np.array_equal(codec.encode([audio])[0], many[key]), key
    for tar in shards.list_shards(str(tmp_path / "batched" / "shards")):
        for s in shards.iter_tar_samples(tar):
            meta = json.loads(s["json"])
            assert meta["num_frames"]["acoustic"] == 150
            assert meta["tokenizers"]["acoustic"] == bat_ac["fingerprint"]

    # deterministic: a fresh run gives the same bytes
    run_tokenize(config(small_audio_dir, tmp_path / "again", codec_batch=4))
    for tar in sorted((tmp_path / "batched" / "shards").glob("*.tar")):
        assert (tmp_path / "again" / "shards" / tar.name).read_bytes() == tar.read_bytes()
    # more tokens into the batched dir one clip at a time would mix variants: refused
    with pytest.raises(TokenizerMismatchError, match="acoustic"):
        run_tokenize(config(small_audio_dir, tmp_path / "batched", codec_batch=1,
                            kmeans=str(tmp_path / "batched" / "kmeans.npz")))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_tokenize_cuda_where_there_is_none_is_one_line_exit_2(small_audio_dir, tmp_path, capsys):
    from cadenza.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["tokenize", "--shards", small_audio_dir, "--out", str(tmp_path / "tok"), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and err[0].startswith("error: --device: cuda asked for")
    assert not (tmp_path / "tok").exists()


def test_a_clip_that_fails_in_a_batched_call_fails_alone():
    from cadenza.pipelines.tokenize.dofns import TokenizeBundle
    from cadenza.tokenizers.acoustic_loading import load_acoustic
    from cadenza.tokenizers.encode_batch import EncodeVariant
    from cadenza.tokenizers.random_codec import synthetic_calibration_audio

    bundle = TokenizeBundle({}, "tokens")
    bundle.acoustic = load_acoustic("encodec_24khz", random_init=True, small=True, optimize="fold",
                                    calibration=synthetic_calibration_audio(24_000, seconds=1.0, count=2),
                                    variant=EncodeVariant(batch=4))
    good = synthetic_calibration_audio(24_000, seconds=1.0, count=2, seed=3)
    bad = np.zeros((2, 24_000), dtype=np.float32)  # not mono: the batched call raises for the whole batch
    out = bundle._acoustic_codes([good[0], bad, good[1]])
    assert isinstance(out[1], ValueError) and "mono" in str(out[1])
    together = bundle.acoustic.encode(good)
    assert np.array_equal(out[0], together[0]) and np.array_equal(out[2], together[1])
