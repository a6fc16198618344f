"""The one small interface every tokenizer implements.

A tokenizer turns one clip (mono float32 audio at `sample_rate`, or a caption) into an array. Its
`fingerprint` changes whenever its config or weights change, so shards made with different
tokenizers can be told apart and refused by the trainer.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Tokenizer(Protocol):
    name: str  # e.g. "encodec_24khz", "mfcc-kmeans", "minilm"
    kind: str  # "acoustic" | "semantic" | "text"
    sample_rate: int  # input audio rate (0 for text)
    frame_rate: float  # output frames per second of audio (0 for text)
    num_codebooks: int  # K for acoustic, 1 for semantic, 0 for text
    vocab_size: int  # codes per codebook (0 for text)

    def fingerprint(self) -> str:
        """Stable hex digest of config + weights."""
        ...

    def encode(self, batch: list[Any]) -> list[np.ndarray]:
        """One output per input, each independent of what else is in the batch."""
        ...

    def describe(self) -> dict[str, Any]:
        """Everything a manifest records about this tokenizer (name, kind, rates, codebooks, vocab,
        fingerprint, and `random_weights: true` when the weights are random)."""
        ...


@runtime_checkable
class AcousticTokenizer(Tokenizer, Protocol):
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """[K, T] integer codes -> mono float32 audio at `sample_rate`."""
        ...


class TokenizerMismatchError(RuntimeError):
    """Tokens were made with a different tokenizer (config or weights) than the one asked for."""


def fingerprint_parts(*parts: Any) -> str:
    """sha256 over a sequence of JSON-able values, strings, bytes and numpy arrays (dtype and shape included)."""
    import hashlib
    import json

    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        elif isinstance(part, str):
            h.update(part.encode())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]
