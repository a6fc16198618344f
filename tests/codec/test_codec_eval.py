"""`cadenza codec eval` on real shards: metrics, codebook statistics, and a planted badly-reconstructed group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from codec_testkit import SR, clip_key, flac_sample, styled_clips, write_audio_dir

from cadenza.codec.evaluate import CodecEvalConfig, evaluate_codec
from cadenza.codec.losses import METRIC_DIRECTION


def _crackle(seed: int, seconds: float = 4.0) -> np.ndarray:
    """Sparse clicks over a high band of noise: nothing like the tonal music the codec learned."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n, dtype=np.float32)
    x[rng.integers(0, n, 400)] = rng.choice([-0.9, 0.9], 400)
    hiss = np.diff(rng.standard_normal(n + 1)).astype(np.float32)
    return (0.8 * x + 0.1 * hiss / np.abs(hiss).max()).astype(np.float32)


@pytest.mark.slow
def test_codec_eval_finds_a_planted_group(trained_codec, tmp_path):
    codec_dir, record = trained_codec
    music = styled_clips(12)
    planted = [(clip_key(100 + i), _crackle(i), "crackle") for i in range(6)]
    audio = write_audio_dir(tmp_path / "audio", [music[:6] + planted[:3], music[6:] + planted[3:]])
    audit = tmp_path / "audit"
    audit.mkdir()
    with (audit / "assignments.jsonl").open("w") as f:
        for key, _, _ in music + planted:
            group = "planted" if key.startswith("clip00001") else "music"
            f.write(json.dumps({"ytid": key[:11], "key": key, "groups": {"region": [group]}}) + "\n")

    metrics = evaluate_codec(CodecEvalConfig(codec=codec_dir, shards=audio, out=str(tmp_path / "eval"),
                                             audit=str(audit), progress=False))
    assert metrics["clips"] == 18 and metrics["random_weights"] is False
    assert metrics["codec"]["training"]["fingerprint"] == record["fingerprint"]
    assert metrics["bitrate_kbps"] == 3.0
    levels = metrics["overall"]["codebooks"]["levels"]
    assert len(levels) == 4 and all(0 < lv["used"] <= 1 and lv["entropy_bits"] > 1 for lv in levels)
    region = metrics["by_group"]["region"]
    assert region["planted"]["flag"] is True and region["music"]["flag"] is False
    worse_on = region["planted"]["worse_on"]
    assert worse_on and region["music"]["worse_on"] == []
    for m in worse_on:  # every metric it is flagged on really is worse, beyond the music's CI
        beyond = (region["planted"][m]["mean"] > region["music"][m]["ci_high"] if METRIC_DIRECTION[m] == "lower"
                  else region["planted"][m]["mean"] < region["music"][m]["ci_low"])
        assert beyond, (m, region["planted"][m], region["music"][m])
    assert metrics["flagged"] == [{"grouping": "region", "group": "planted", "worse_on": worse_on,
                                   "q": region["planted"]["q"], **{m: region["planted"][m]["mean"] for m in worse_on}}]
    out = Path(tmp_path / "eval")
    assert len((out / "clips.jsonl").read_text().splitlines()) == 18
    html = (out / "report.html").read_text()
    assert "planted" in html and "codec_log_mel_l1_by_region.png" in html
    assert all((out / p).stat().st_size > 1000 for p in metrics["plots"])


def test_codec_eval_of_a_random_codec_is_labelled(tmp_path):
    from cadenza.tokenizers.acoustic_loading import load_acoustic, save_codec

    tok = load_acoustic("encodec_24khz", random_init=True, small=True, bandwidth=1.5)
    save_codec(tok, str(tmp_path / "random-codec"))
    audio = write_audio_dir(tmp_path / "audio", [styled_clips(3, seconds=1.0)])
    metrics = evaluate_codec(CodecEvalConfig(codec=str(tmp_path / "random-codec"), shards=audio,
                                             out=str(tmp_path / "eval"), progress=False))
    assert metrics["random_weights"] is True and metrics["clips"] == 3
    assert "RANDOM-WEIGHT CODEC" in (tmp_path / "eval" / "report.html").read_text()
    assert "by_group" not in metrics


def test_codec_eval_counts_undecodable_clips_and_checks_its_metrics(tmp_path):
    """A planted corrupt clip is counted (overall, in its group, with why), not silently dropped; every
    metric's reference order is recorded, and log-mel L1, fooled by shaped noise, is reported as failing."""

    from cadenza.formats import shards
    from cadenza.tokenizers.acoustic_loading import load_acoustic, save_codec

    tok = load_acoustic("encodec_24khz", random_init=True, small=True, bandwidth=1.5)
    save_codec(tok, str(tmp_path / "codec"))
    clips = styled_clips(4, seconds=2.0)
    corrupt = {**flac_sample(clip_key(50), clips[0][1], "broken"), "flac": b"fLaC but not really"}
    root = tmp_path / "audio"
    write_audio_dir(root, [clips])
    shards.write_shard(str(root / "shards" / shards.shard_name("audio", 1)), [corrupt], {"samples": 1})
    audit = tmp_path / "audit"
    audit.mkdir()
    with (audit / "assignments.jsonl").open("w") as f:
        for i, key in enumerate([k for k, _, _ in clips] + [clip_key(50)]):
            f.write(json.dumps({"ytid": key[:11], "key": key, "groups": {"region": ["a" if i % 2 else "b"]}}) + "\n")
    metrics = evaluate_codec(CodecEvalConfig(codec=str(tmp_path / "codec"), shards=str(root), audit=str(audit),
                                             out=str(tmp_path / "eval"), progress=False))
    assert metrics["clips"] == 4
    lost = metrics["undecodable"]
    assert lost["count"] == 1 and lost["clips"][0]["key"] == clip_key(50)
    assert lost["clips"][0]["reason"].startswith("cannot decode")
    assert lost["by_group"]["region"]["b"]["count"] == 1
    assert [metrics["by_group"]["region"][g]["undecodable"] for g in ("a", "b")] == [0, 1]
    checks = metrics["validity"]["metrics"]
    assert set(checks) >= {"chroma_similarity", "flatness_ratio", "f0_agreement", "log_mel_l1"}
    assert checks["log_mel_l1"]["passes"] is False
    assert metrics["headline"] is None or metrics["headline"]["metric"] != "log_mel_l1"
    assert metrics["references"]["original"]["chroma_similarity"]["mean"] == pytest.approx(1.0)
    assert metrics["references"]["opus"]["chroma_similarity"]["mean"] > metrics["overall"]["chroma_similarity"]["mean"]
    assert metrics["pitch"]["not_applicable"] + metrics["pitch"]["clear_pitch_clips"] == 4
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "could not be decoded: 1" in html and clip_key(50) in html and "FAILS" in html
