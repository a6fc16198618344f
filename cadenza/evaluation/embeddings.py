"""Per-clip embeddings for the audio metrics (FD, KAD, adherence, mainstream pull).

- `mfcc` (default, offline): mean and std of 20 MFCCs, spectral centroid and flatness (token_metrics).
- `encodec`: mean and std over time of the codec's quantized latents of the clip's codes; needs an
  EnCodec-style codec (the run's own), nothing downloaded.
- `hf:PATH`: a local transformers audio model (CLAP, MERT, wav2vec2-style): CLAP's audio projection
  when the model has one, else the time-mean of its last hidden state. Nothing is fetched: a missing
  model is an `EmbeddingError` saying what to download.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.evaluation.token_metrics import audio_features

# (audio, sample_rate, acoustic codes [K, T]) -> embedding [D]
Embedder = Callable[[np.ndarray, int, np.ndarray], np.ndarray]
HF_HINT = (
    "download a CLAP or MERT model first, e.g. `huggingface-cli download laion/clap-htsat-unfused "
    "--local-dir PATH` (or m-a-p/MERT-v1-95M), then pass --embeddings hf:PATH"
)


class EmbeddingError(ValueError):
    """The requested embedding model cannot be used (message: what to do)."""


def mfcc_embedder() -> Embedder:
    return lambda audio, sr, codes: audio_features(audio, sr)


def encodec_embedder(decoder: Any) -> Embedder:
    quantizer = getattr(getattr(decoder, "model", None), "quantizer", None)
    if quantizer is None:
        raise EmbeddingError(
            f"--embeddings encodec: this run's codec ({type(decoder).__name__}) has no EnCodec quantizer; "
            "use --embeddings mfcc"
        )
    import torch

    def embed(audio: np.ndarray, sr: int, codes: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(np.asarray(codes, dtype=np.int64))[:, None, :]  # [K, 1, T]
        with torch.inference_mode():
            z = quantizer.decode(c)[0].float().numpy()  # [D, T]
        return np.concatenate([z.mean(1), z.std(1)]).astype(np.float64)

    return embed


def hf_embedder(path: str) -> Embedder:
    root = Path(path).expanduser()
    if not (root / "config.json").is_file():
        raise EmbeddingError(f"--embeddings hf:{path}: no model there (config.json missing); {HF_HINT}")
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    try:
        extractor = AutoFeatureExtractor.from_pretrained(str(root), local_files_only=True)
        model = AutoModel.from_pretrained(str(root), local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"--embeddings hf:{path}: cannot load it ({exc}); {HF_HINT}") from exc
    target_sr = int(getattr(extractor, "sampling_rate", 16000))

    def embed(audio: np.ndarray, sr: int, codes: np.ndarray) -> np.ndarray:
        import librosa

        y = np.asarray(audio, np.float32)
        y = librosa.resample(y, orig_sr=sr, target_sr=target_sr) if sr != target_sr else y
        inputs = extractor(y, sampling_rate=target_sr, return_tensors="pt")
        with torch.inference_mode():
            if hasattr(model, "get_audio_features"):
                vec = model.get_audio_features(**inputs)
                vec = getattr(vec, "pooler_output", vec)
                return vec[0].float().numpy().astype(np.float64)
            hidden = model(**inputs).last_hidden_state[0]  # [T, D]
        return hidden.float().mean(0).numpy().astype(np.float64)

    return embed


def make_embedder(spec: str, decoder: Any) -> Embedder:
    """`mfcc`, `encodec` or `hf:PATH` -> an embedder; EmbeddingError for anything else or a missing model."""
    if spec == "mfcc":
        return mfcc_embedder()
    if spec == "encodec":
        return encodec_embedder(decoder)
    if spec.startswith("hf:") and len(spec) > 3:
        return hf_embedder(spec[3:])
    raise EmbeddingError(f"--embeddings {spec!r}: choose mfcc, encodec or hf:PATH (a local model directory)")
