"""Semantic tokens: k-means cluster ids of frame features, as MusicLM (w2v-BERT + k-means) and HuBERT do.

Features:
- `mfcc` (default, no weights): 13 MFCCs with deltas and delta-deltas (the 39-d features HuBERT's first
  iteration clustered) plus 12 chroma bins for pitch class, at 16 kHz with a 20 ms hop (50 Hz).
- `hf:PATH[@LAYER]`: hidden states of a local transformers audio model (HuBERT, wav2vec2, MERT...) at
  LAYER (default: the middle layer), at the model's own frame rate.
A fitted k-means is an `.npz` (centroids, feature mean/std, config JSON, fingerprint); it is read with
`allow_pickle=False`, so a tokens file can never run code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.tokenizers.base import fingerprint_parts

FEATURE_RATE = 16_000
MFCC_HOP = 320  # 20 ms at 16 kHz -> 50 Hz frames


@dataclass(frozen=True)
class FeatureSpec:
    """Which frame features to cluster. `name` is "mfcc" or "hf:PATH[@LAYER]"."""

    name: str = "mfcc"

    @property
    def is_hf(self) -> bool:
        return self.name.startswith("hf:")

    def hf_path_layer(self) -> tuple[str, int | None]:
        spec = self.name.removeprefix("hf:")
        path, sep, layer = spec.rpartition("@")
        if sep and layer.isdigit():
            return path, int(layer)
        return spec, None


class MfccFeatures:
    """MFCC + deltas + chroma frames [T, 51] at 50 Hz from mono audio at any rate."""

    sample_rate = FEATURE_RATE
    frame_rate = FEATURE_RATE / MFCC_HOP
    dim = 51

    def describe(self) -> dict[str, Any]:
        return {"features": "mfcc", "n_mfcc": 13, "deltas": 2, "chroma": 12, "tuning": 0.0, "sample_rate": FEATURE_RATE,
                "hop": MFCC_HOP}

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        import librosa

        y = np.asarray(audio, dtype=np.float32)
        if sr != FEATURE_RATE:
            y = librosa.resample(y, orig_sr=sr, target_sr=FEATURE_RATE)
        n_frames = len(y) // MFCC_HOP
        if n_frames < 1:
            raise ValueError(f"audio too short for semantic features: {len(y)} samples at {FEATURE_RATE} Hz")
        mfcc = librosa.feature.mfcc(y=y, sr=FEATURE_RATE, n_mfcc=13, n_fft=400, hop_length=MFCC_HOP, n_mels=40)
        d1 = librosa.feature.delta(mfcc, order=1, mode="nearest")
        d2 = librosa.feature.delta(mfcc, order=2, mode="nearest")
        # tuning fixed at A440: per-clip tuning estimation is slow and would shift pitch classes between clips
        chroma = librosa.feature.chroma_stft(y=y, sr=FEATURE_RATE, n_fft=2048, hop_length=MFCC_HOP, tuning=0.0)
        feats = np.concatenate([mfcc, d1, d2, chroma[:, : mfcc.shape[1]]], axis=0).T
        return feats[:n_frames].astype(np.float32)


class HfFeatures:
    """Hidden states at one layer of a local transformers audio model (loaded offline)."""

    def __init__(self, path: str, layer: int | None = None) -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModel

        if not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"hf:{path}: not a local transformers model directory (no config.json)")
        self.path = path
        self.extractor = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        n_layers = int(self.model.config.num_hidden_layers)
        self.layer = n_layers // 2 if layer is None else layer
        if not 0 <= self.layer <= n_layers:
            raise ValueError(f"hf:{path}: layer {self.layer} out of range 0..{n_layers}")
        self.sample_rate = int(getattr(self.extractor, "sampling_rate", FEATURE_RATE))
        strides = getattr(self.model.config, "conv_stride", None)
        self.frame_rate = self.sample_rate / float(np.prod(strides)) if strides else 50.0
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch
        state = self.model.state_dict()
        self._weights_fp = fingerprint_parts(*[x for k in sorted(state) for x in (k, state[k].float().numpy())])

    def describe(self) -> dict[str, Any]:
        return {"features": "hf", "path": self.path, "layer": self.layer, "model_type": self.model.config.model_type,
                "weights_fingerprint": self._weights_fp, "sample_rate": self.sample_rate}

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        import librosa

        torch = self._torch
        y = np.asarray(audio, dtype=np.float32)
        if sr != self.sample_rate:
            y = librosa.resample(y, orig_sr=sr, target_sr=self.sample_rate)
        inputs = self.extractor(y, sampling_rate=self.sample_rate, return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=True)
        return out.hidden_states[self.layer][0].float().numpy()


def make_features(spec: FeatureSpec | str):
    spec = FeatureSpec(spec) if isinstance(spec, str) else spec
    if spec.name == "mfcc":
        return MfccFeatures()
    if spec.is_hf:
        return HfFeatures(*spec.hf_path_layer())
    raise ValueError(f"unknown semantic features {spec.name!r}: use 'mfcc' or 'hf:PATH[@LAYER]'")


@dataclass
class KMeansModel:
    """Centroids over standardised features, with what is needed to reproduce the features."""

    centroids: np.ndarray  # float32 [C, F]
    mean: np.ndarray  # float32 [F]
    std: np.ndarray  # float32 [F]
    config: dict[str, Any]  # features describe() + fit settings

    def fingerprint(self) -> str:
        return fingerprint_parts("kmeans", self.config.get("features_describe"), self.centroids, self.mean, self.std)

    def save(self, path: str | Path) -> None:
        import io

        from cadenza.formats import storage

        buf = io.BytesIO()
        np.savez(buf, centroids=self.centroids.astype(np.float32), mean=self.mean.astype(np.float32),
                 std=self.std.astype(np.float32), config=np.array(json.dumps(self.config, sort_keys=True)),
                 fingerprint=np.array(self.fingerprint()))
        storage.write_bytes_atomic(str(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> KMeansModel:
        import fsspec

        with fsspec.open(str(path), "rb") as f, np.load(f, allow_pickle=False) as z:
            model = cls(z["centroids"], z["mean"], z["std"], json.loads(str(z["config"])))
            stored = str(z["fingerprint"])
        if model.fingerprint() != stored:
            raise ValueError(f"{path}: k-means file is corrupt (fingerprint {stored} != {model.fingerprint()})")
        return model


def assign(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid per frame, vectorized: argmin ||x||^2 - 2 x.c + ||c||^2 (||x||^2 is constant)."""
    scores = features @ centroids.T * -2.0 + np.einsum("ij,ij->i", centroids, centroids)
    return scores.argmin(axis=1)


@dataclass
class FitSettings:
    clusters: int = 1024
    seed: int = 0
    batch_size: int = 4096
    max_iter: int = 50

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_kmeans_on_frames(frames: np.ndarray, features_describe: dict[str, Any], settings: FitSettings) -> KMeansModel:
    """MiniBatchKMeans over [N, F] frames (already sampled across clips)."""
    from sklearn.cluster import MiniBatchKMeans

    if len(frames) < settings.clusters:
        raise ValueError(
            f"only {len(frames)} feature frames for {settings.clusters} clusters: use fewer --clusters or more audio"
        )
    mean = frames.mean(0)
    std = frames.std(0) + 1e-5
    x = (frames - mean) / std
    km = MiniBatchKMeans(n_clusters=settings.clusters, random_state=settings.seed, batch_size=settings.batch_size,
                         max_iter=settings.max_iter, n_init=3)
    km.fit(x)
    config = {"features_describe": features_describe, "fit": settings.to_dict(), "num_frames": int(len(frames)),
              "inertia_per_frame": float(km.inertia_ / len(x))}
    return KMeansModel(km.cluster_centers_.astype(np.float32), mean.astype(np.float32), std.astype(np.float32), config)


class SemanticTokenizer:
    """Features -> standardise -> nearest centroid. One int16 [T] array per clip."""

    kind = "semantic"
    num_codebooks = 1

    def __init__(self, kmeans: KMeansModel, features=None, *, name: str | None = None) -> None:
        described = kmeans.config["features_describe"]
        if features is None:
            features = make_features(_spec_from_describe(described))
        if features.describe() != described:
            raise ValueError(f"k-means was fitted on features {described}, not {features.describe()}")
        self.kmeans = kmeans
        self.features = features
        self.name = name or ("mfcc-kmeans" if described["features"] == "mfcc" else f"hf-kmeans:{described['path']}")
        self.sample_rate = int(features.sample_rate)
        self.frame_rate = float(features.frame_rate)
        self.vocab_size = int(len(kmeans.centroids))
        self._scaled = (kmeans.centroids.astype(np.float32), kmeans.mean, kmeans.std)

    def fingerprint(self) -> str:
        return self.kmeans.fingerprint()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "sample_rate": self.sample_rate, "frame_rate": self.frame_rate,
                "num_codebooks": 1, "vocab_size": self.vocab_size, "fingerprint": self.fingerprint(),
                "random_weights": False, "features": self.kmeans.config["features_describe"]}

    def encode(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Audio at `sample_rate` -> int16 [T] cluster ids."""
        return [self.encode_audio(a, self.sample_rate) for a in batch]

    def encode_audio(self, audio: np.ndarray, sr: int) -> np.ndarray:
        centroids, mean, std = self._scaled
        feats = (self.features(audio, sr) - mean) / std
        return assign(feats.astype(np.float32), centroids).astype(np.int16)


def _spec_from_describe(described: dict[str, Any]) -> str:
    if described["features"] == "mfcc":
        return "mfcc"
    return f"hf:{described['path']}@{described['layer']}"


def load_semantic(kmeans_path: str | Path) -> SemanticTokenizer:
    return SemanticTokenizer(KMeansModel.load(kmeans_path))
