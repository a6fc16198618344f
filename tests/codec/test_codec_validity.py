"""The codec evaluation's listener metrics rank original > Opus > shaped noise > another clip, and log-mel L1
does not: on the demo's synthetic styles and, where shared/ has it, on windows of real music."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadenza.codec.losses import log_mel_l1
from cadenza.codec.metrics import aggregate, fit_length
from cadenza.codec.metrics.chroma import chroma_similarity
from cadenza.codec.metrics.flatness import flatness_ratio
from cadenza.codec.metrics.pitch import f0_agreement, pitch_track
from cadenza.codec.references import opus_roundtrip, shaped_noise
from cadenza.codec.validity import REFERENCE_ORDER, check_order

SR = 24_000
HOP = 320
REAL_MUSIC = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-music" / "singularity"


def _tensor(audio: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]


def _references(clips: list[np.ndarray]) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """reference -> (original, its stand-in reconstruction) per clip."""
    return {"original": [(x, x) for x in clips],
            "opus": [(x, opus_roundtrip(x, SR, 6.0)) for x in clips],
            "shaped_noise": [(x, shaped_noise(x, SR, HOP, seed=i)) for i, x in enumerate(clips)],
            "another_clip": [(x, fit_length(clips[i - 1], len(x))) for i, x in enumerate(clips)]}


def _order(metric: str, fn, pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> dict:
    return check_order(metric, {ref: aggregate(metric, [fn(x, y, SR) for x, y in pairs[ref]]) for ref in pairs})


@pytest.fixture(scope="module")
def demo_pairs():
    from cadenza.demo.styles import STYLES
    from cadenza.demo.synth import render

    return _references([render(style, seed=i, duration_s=4.0, sr=SR) for i, style in enumerate(STYLES)])


def test_chroma_similarity_ranks_the_references_on_the_demo_styles(demo_pairs):
    result = _order("chroma_similarity", chroma_similarity, demo_pairs)
    assert result["passes"], result
    assert result["rank_values"]["original"] == pytest.approx(1.0)


def test_log_mel_l1_is_fooled_by_shaped_noise(demo_pairs):
    """The reason chroma leads: shaped noise (no notes) is closer to the original on log-mel than Opus is."""
    def distance(x: np.ndarray, y: np.ndarray, sr: int) -> float:
        return float(log_mel_l1(_tensor(x), _tensor(y), sr)[0])

    result = _order("log_mel_l1", distance, demo_pairs)
    assert result["passes"] is False and "opus !> shaped_noise" in result["why"]


def test_shaped_noise_has_the_loudness_of_every_band_and_no_notes(demo_pairs):
    for x, noise in demo_pairs["shaped_noise"]:
        assert float(log_mel_l1(_tensor(x), _tensor(noise), SR, n_fft=1024, hop=HOP)[0]) < 1.0
        assert flatness_ratio(x, noise, SR) > 1.5  # noisier than the music it follows


def test_f0_agreement_follows_a_melody_and_skips_clips_without_one():
    t = np.arange(4 * SR) / SR
    notes = np.where(t % 1 < 0.5, 220.0, 330.0)
    melody = (0.5 * np.sin(2 * np.pi * np.cumsum(notes) / SR)).astype(np.float32)
    up_a_tone = (0.5 * np.sin(2 * np.pi * np.cumsum(notes * 2 ** (2 / 12)) / SR)).astype(np.float32)
    track = pitch_track(melody, SR)
    assert track.clear
    assert f0_agreement(track, track) == 1.0
    assert f0_agreement(track, pitch_track(up_a_tone, SR)) < 0.1
    noise = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32) * 0.3
    assert f0_agreement(pitch_track(noise, SR), track) is None  # no clear pitch: not applicable


def _real_windows(count: int = 4, seconds: float = 10.0) -> list[np.ndarray]:
    import librosa
    import soundfile as sf

    clips = []
    for path in sorted(REAL_MUSIC.glob("*.ogg"))[:count]:
        with sf.SoundFile(str(path)) as f:
            f.seek(min(int(60 * f.samplerate), max(0, f.frames - int(seconds * f.samplerate))))
            x = f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True).mean(axis=1)
            clips.append(librosa.resample(x, orig_sr=f.samplerate, target_sr=SR))
    return clips


@pytest.mark.skipif(not REAL_MUSIC.is_dir(), reason=f"no real music at {REAL_MUSIC}")
def test_chroma_and_flatness_rank_the_references_on_real_music():
    pairs = _references(_real_windows())
    for metric, fn in (("chroma_similarity", chroma_similarity), ("flatness_ratio", flatness_ratio)):
        result = _order(metric, fn, pairs)
        assert result["passes"], (metric, result)


def test_check_order_names_the_broken_step():
    summaries = {ref: {"mean": v, "n": 3} for ref, v in zip(REFERENCE_ORDER, (1.0, 0.8, 0.9, 0.1), strict=True)}
    result = check_order("chroma_similarity", summaries)
    assert result["passes"] is False and result["why"] == "opus !> shaped_noise"
    assert check_order("f0_agreement", {**summaries, "opus": {"mean": float("nan"), "n": 0}})["passes"] is None
