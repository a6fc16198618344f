"""`cadenza codec train|eval` through the real CLI, and the trained codec through tokenize -> train -> sample."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-c", "from cadenza.cli import main; main()"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("args, needle", [
    (["codec", "train", "--shards", "{audio}", "--out", "{tmp}/c", "--preset", "huge"], "--preset: expected one of"),
    (["codec", "train", "--shards", "{tmp}/nowhere", "--out", "{tmp}/c"], "--shards: no such file"),
    (["codec", "train", "--shards", "{audio}", "--out", "{audio}"], "--out"),
    (["codec", "train", "--shards", "{audio}", "--out", "{tmp}/c", "--steps", "0"], "--steps"),
    (["codec", "eval", "--codec", "{tmp}/nowhere", "--shards", "{audio}", "--out", "{tmp}/e"], "--codec"),
    (["codec", "eval", "--codec", "{codec}", "--shards", "{audio}", "--out", "{tmp}/e", "--audit", "{tmp}"],
     "--audit"),
])
def test_mistakes_are_one_line_exit_2(args, needle, codec_audio_dir, trained_codec, tmp_path):
    fill = {"audio": codec_audio_dir, "tmp": str(tmp_path), "codec": trained_codec[0]}
    res = _run(*[a.format(**fill) for a in args])
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, res.stderr


@pytest.mark.slow
def test_codec_eval_json_is_one_document(trained_codec, codec_audio_dir, tmp_path):
    res = _run("codec", "eval", "--codec", trained_codec[0], "--shards", codec_audio_dir, "--out", str(tmp_path / "e"),
               "--max-clips", "3", "--json")
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout)
    assert metrics["clips"] == 3 and metrics["overall"]["log_mel_l1"]["n"] == 3


@pytest.mark.slow
def test_trained_codec_round_trips_through_tokenize_train_sample(trained_codec, codec_audio_dir, tmp_path):
    """--codec-weights: tokenize with the trained codec; sample decodes with it, found through the manifest."""
    import numpy as np
    import soundfile as sf

    from cadenza import stages as orch

    codec_dir, record = trained_codec
    tokens = orch.tokenize(codec_audio_dir, str(tmp_path / "tokens"), codec_weights=codec_dir, text="minilm",
                           clusters=16, beam=orch.beam_args("DirectRunner", ["--direct_num_workers=1"]))
    assert tokens["clips_written"] == 16 and tokens["random_weights"] is False
    manifest = json.loads((tmp_path / "tokens" / "manifest.json").read_text())
    acoustic = manifest["tokenizers"]["acoustic"]
    assert acoustic["fingerprint"] == record["fingerprint"] and acoustic["num_codebooks"] == 4
    orch.train(str(tmp_path / "tokens"), str(tmp_path / "run"), steps=2)
    out = orch.sample(str(tmp_path / "run"), str(tmp_path / "samples"), prompts=["a gamelan", "a house track"],
                      seconds=1.0)
    index = json.loads((tmp_path / "samples" / "samples.json").read_text())
    assert len(index) == len(out["wavs"]) == 2 and not any(entry.get("random_weights") for entry in index)
    audio, sr = sf.read(tmp_path / "samples" / out["wavs"][0])
    assert sr == 24_000 and len(audio) >= 0.9 * sr and np.isfinite(audio).all()
