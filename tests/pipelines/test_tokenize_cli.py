"""`cadenza tokenize` and `cadenza tokenize fit-kmeans` through the real CLI."""

from __future__ import annotations

import io
import json

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.formats import shards
from cadenza.tokenizers.acoustic_loading import load_acoustic
from cadenza.tokenizers.random_codec import synthetic_calibration_audio
from cadenza.tokenizers.semantic import KMeansModel

torch.set_num_threads(1)  # one thread: faster than two on a shared 2-core box, and codes depend on it


def test_codec_weights_dir_gives_the_in_memory_models_codes(small_audio_dir, tmp_path):
    # a small random EnCodec saved with save_pretrained, then loaded by the pipeline via --codec-weights
    in_memory = load_acoustic("encodec_24khz", random_init=True, small=True, seed=3,
                              calibration=synthetic_calibration_audio(24_000, seconds=1.0, count=3))
    in_memory.save(tmp_path / "codec")
    kmeans = tmp_path / "km.npz"
    runner = CliRunner()
    fitted = runner.invoke(app, ["tokenize", "fit-kmeans", "--shards", small_audio_dir, "--out", str(kmeans),
                                 "--clusters", "8", "--frames-per-clip", "50"])
    assert fitted.exit_code == 0, fitted.output
    assert KMeansModel.load(kmeans).centroids.shape == (8, 51)
    refit = runner.invoke(app, ["tokenize", "fit-kmeans", "--shards", small_audio_dir, "--out", str(kmeans),
                                "--clusters", "8", "--frames-per-clip", "50"])
    assert refit.exit_code == 0, refit.output  # its own earlier output is overwritten without --force

    out = tmp_path / "tokens"
    result = runner.invoke(app, [
        "tokenize", "--shards", small_audio_dir, "--out", str(out), "--codec-weights", str(tmp_path / "codec"),
        "--kmeans", str(kmeans), "--text", "none", "--no-progress", "--batch-size", "2",
        "--runner", "DirectRunner", "--direct_num_workers", "1",  # Beam options pass through
    ])
    assert result.exit_code == 0, result.output
    assert "4 clips tokenized" in result.output and "1 failures" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenizers"]["acoustic"]["fingerprint"] == in_memory.fingerprint()
    assert manifest["random_weights"] is True  # the saved codec carries its random-weight mark

    audio_by_key = {s["__key__"]: s for t in shards.list_shards(f"{small_audio_dir}/shards")
                    for s in shards.iter_tar_samples(t)}
    for tar in shards.list_shards(str(out / "shards")):
        for sample in shards.iter_tar_samples(tar):
            audio, sr = sf.read(io.BytesIO(audio_by_key[sample["__key__"]]["flac"]), dtype="float32")
            expected = in_memory.encode([librosa.resample(audio, orig_sr=sr, target_sr=24_000)])[0]
            assert np.array_equal(np.load(io.BytesIO(sample["acoustic.npy"]), allow_pickle=False), expected)


def test_missing_inputs_are_one_line_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["tokenize", "--out", str(tmp_path / "t")])
    assert result.exit_code != 0 and "--shards and --out are required" in result.output
    result = runner.invoke(app, ["tokenize", "--shards", str(tmp_path), "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "no complete audio shards" in result.output


def test_onnx_variant_is_named_in_the_manifest_fingerprint(small_audio_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from cadenza.tokenizers.acoustic_loading import load_acoustic_for_tokens

    out = tmp_path / "tokens"
    result = CliRunner().invoke(app, [
        "tokenize", "--shards", small_audio_dir, "--out", str(out), "--codec-random-init", "--codec-small",
        "--clusters", "8", "--text", "none", "--no-progress", "--optimize", "onnx",
    ])
    assert result.exit_code == 0, result.output
    acoustic = json.loads((out / "manifest.json").read_text())["tokenizers"]["acoustic"]
    assert acoustic["variant"] == "onnx"
    assert acoustic["fingerprint"] == f"{acoustic['weights_fingerprint']}-onnx"
    # whoever reads the tokens back gets the variant that made them: same fingerprint, same codes
    reloaded = load_acoustic_for_tokens(str(out))
    assert reloaded.optimize == "onnx" and reloaded.fingerprint() == acoustic["fingerprint"]
    audio_by_key = {s["__key__"]: s for t in shards.list_shards(f"{small_audio_dir}/shards")
                    for s in shards.iter_tar_samples(t)}
    tars = shards.list_shards(str(out / "shards"))
    assert tars
    for tar in tars:
        for sample in shards.iter_tar_samples(tar):
            audio, sr = sf.read(io.BytesIO(audio_by_key[sample["__key__"]]["flac"]), dtype="float32")
            expected = reloaded.encode([librosa.resample(audio, orig_sr=sr, target_sr=24_000)])[0]
            assert np.array_equal(np.load(io.BytesIO(sample["acoustic.npy"]), allow_pickle=False), expected)


def test_onnx_variant_without_onnx_runtime_is_a_one_line_error(small_audio_dir, tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    result = CliRunner().invoke(app, ["tokenize", "--shards", small_audio_dir, "--out", str(tmp_path / "t"),
                                      "--optimize", "onnx"])
    assert result.exit_code == 2
    assert "--optimize" in result.output and "pip install 'cadenza[onnx]'" in result.output
    assert "Traceback" not in result.output
