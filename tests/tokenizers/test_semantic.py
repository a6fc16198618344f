"""Semantic k-means tokens: meaningful on synthetic sounds, vectorized assignment, npz without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.tokenizers.semantic import (
    FeatureSpec,
    FitSettings,
    KMeansModel,
    MfccFeatures,
    SemanticTokenizer,
    assign,
    fit_kmeans_on_frames,
    make_features,
)

SR = 32_000


def sound(kind: str, f0: float = 220.0, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    if kind == "sine":
        y = np.sin(2 * np.pi * f0 * t)
    elif kind == "saw":
        y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 15))
    elif kind == "square":
        y = np.sign(np.sin(2 * np.pi * f0 * t))
    else:
        y = np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


SOUNDS = {
    "sine220": sound("sine", 220), "sine880": sound("sine", 880), "saw220": sound("saw", 220),
    "square330": sound("square", 330), "noise": sound("noise"),
}


@pytest.fixture(scope="module")
def tokenizer():
    feats = MfccFeatures()
    frames = np.concatenate([feats(a, SR) for a in SOUNDS.values()])
    km = fit_kmeans_on_frames(frames, feats.describe(), FitSettings(clusters=16, seed=0))
    return SemanticTokenizer(km, feats)


def test_frames_are_50hz_int16_in_vocab(tokenizer):
    tokens = tokenizer.encode_audio(SOUNDS["saw220"], SR)
    assert tokens.dtype == np.int16 and tokens.shape == (100,)
    assert tokens.min() >= 0 and tokens.max() < tokenizer.vocab_size == 16
    ten_s = tokenizer.encode([np.tile(SOUNDS["sine220"], 5)[: 10 * 16_000]])[0]  # input at 16 kHz
    assert ten_s.shape == (500,)
    assert tokenizer.describe()["frame_rate"] == 50.0


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def test_tokens_differ_between_sounds_and_survive_light_noise(tokenizer):
    tokens = {name: tokenizer.encode_audio(a, SR) for name, a in SOUNDS.items()}
    names = list(tokens)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            # steady sounds of different timbre or pitch land in different clusters
            assert _agreement(tokens[a][5:-5], tokens[b][5:-5]) < 0.2, (a, b)
    rng = np.random.default_rng(1)
    for name, audio in SOUNDS.items():
        noisy = audio + 10 ** (-40 / 20) * 0.5 * rng.standard_normal(audio.size).astype(np.float32)  # ~40 dB SNR
        assert _agreement(tokens[name], tokenizer.encode_audio(noisy, SR)) > 0.8, name


def test_assignment_matches_a_brute_force_loop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 51)).astype(np.float32)
    c = rng.standard_normal((64, 51)).astype(np.float32)
    brute = np.array([np.argmin(((c - row) ** 2).sum(1)) for row in x])
    assert np.array_equal(assign(x, c), brute)


def test_npz_round_trip_without_pickle(tokenizer, tmp_path):
    path = tmp_path / "km.npz"
    tokenizer.kmeans.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"centroids", "mean", "std", "config", "fingerprint"}
    loaded = SemanticTokenizer(KMeansModel.load(path))
    assert loaded.fingerprint() == tokenizer.fingerprint()
    assert np.array_equal(loaded.encode_audio(SOUNDS["noise"], SR), tokenizer.encode_audio(SOUNDS["noise"], SR))
    z = dict(np.load(path, allow_pickle=False))
    z["centroids"] = z["centroids"] + 1.0
    np.savez(tmp_path / "tampered.npz", **z)
    with pytest.raises(ValueError, match="corrupt"):
        KMeansModel.load(tmp_path / "tampered.npz")


def test_too_few_frames_for_clusters_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer --clusters"):
        fit_kmeans_on_frames(np.zeros((10, 3), np.float32), {"features": "mfcc"}, FitSettings(clusters=64))


def test_hf_features_from_a_local_model_with_layer_choice(tmp_path):
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    cfg = HubertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                       conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16)
    HubertModel(cfg).save_pretrained(tmp_path / "hubert")
    Wav2Vec2FeatureExtractor(sampling_rate=16_000).save_pretrained(tmp_path / "hubert")
    feats = make_features(FeatureSpec(f"hf:{tmp_path / 'hubert'}@2"))
    assert feats.layer == 2 and feats.frame_rate == 50.0
    frames = feats(SOUNDS["saw220"], SR)
    assert frames.shape == (99, 32)  # conv front end: 2 s at 16 kHz -> 99 frames
    km = fit_kmeans_on_frames(frames, feats.describe(), FitSettings(clusters=4))
    tok = SemanticTokenizer(km, feats)
    assert tok.encode_audio(SOUNDS["saw220"], SR).shape == (99,)
    assert tok.describe()["features"]["layer"] == 2
    with pytest.raises(ValueError, match="not"):
        SemanticTokenizer(km, MfccFeatures())
