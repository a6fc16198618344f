"""A synthetic token dataset with a structure a tiny model can learn in seconds.

Used by tests, benchmarks and the offline demo. Caption class c (embedding = a fixed random vector)
makes semantic tokens s[t] = (phase + (c + 1) * t) mod V_s at `semantic_rate`, and acoustic tokens at
twice that rate with a[k, t] = (2 * s[t // 2] + t % 2 + 7 * k) mod V_a. Everything after the first
semantic token is determined, so a model that learned it has a loss far below the unigram entropy.

With `distinct_styles` (the set the metric-validity test needs), the classes also sound different
once decoded, and both stages need the caption: class c walks band c // 2 of the semantic vocabulary,
s[t] = (c // 2) * band + (phase + t) mod band, and its parity shifts acoustic codebook 1 by half the
vocabulary, which the semantic tokens do not tell. The tone decoder plays codebook 0 as the pitch and
codebook 1 as an overtone.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.formats.shards import shard_name, write_shard
from cadenza.formats.storage import write_json_atomic

SEMANTIC_VOCAB, ACOUSTIC_VOCAB, CODEBOOKS, TEXT_DIM = 16, 32, 2, 16
SEMANTIC_RATE, ACOUSTIC_RATE = 10.0, 20.0
FINGERPRINTS = {"semantic": "synthetic-sem-1", "acoustic": "synthetic-ac-1", "text": "synthetic-text-1"}


def class_embedding(c: int) -> np.ndarray:
    return np.random.default_rng(1000 + c).standard_normal(TEXT_DIM).astype(np.float32)


def semantic_tokens(c: int, phase: int, n: int) -> np.ndarray:
    return ((phase + (c + 1) * np.arange(n)) % SEMANTIC_VOCAB).astype(np.int16)


def banded_semantic_tokens(c: int, classes: int, phase: int, n: int) -> np.ndarray:
    band = max(1, SEMANTIC_VOCAB // -(-classes // 2))
    return ((c // 2) * band + (phase + np.arange(n)) % band).astype(np.int16)


def acoustic_tokens(semantic: np.ndarray, n: int, shift: int = 0) -> np.ndarray:
    """`shift` moves codebooks 1.. (not 0) by that many codes."""
    t = np.arange(n)
    base = 2 * semantic.astype(np.int64)[np.minimum(t // 2, len(semantic) - 1)] + t % 2
    return np.stack([(base + 7 * k + shift * (k > 0)) % ACOUSTIC_VOCAB for k in range(CODEBOOKS)]).astype(np.int16)


def caption(c: int) -> str:
    return f"synthetic class {c}"


class SyntheticText:
    """Text encoder for the synthetic captions: 'synthetic class N' -> that class's embedding."""

    dim = TEXT_DIM

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        return [class_embedding(int(t.rsplit(" ", 1)[-1]) if t.rsplit(" ", 1)[-1].isdigit() else 0) for t in texts]


class ToneDecoder:
    """Stands in for EnCodec: each acoustic frame becomes a short sine whose pitch follows codebook 0,
    plus a quieter overtone that follows codebook 1."""

    sample_rate = 8000

    def decode(self, codes: np.ndarray) -> np.ndarray:
        hop = int(self.sample_rate / ACOUSTIC_RATE)
        t = np.arange(hop) / self.sample_rate
        over = codes[1] if len(codes) > 1 else np.zeros_like(codes[0])
        frames = [
            0.3 * np.sin(2 * np.pi * (110.0 + 15.0 * int(c)) * t)
            + 0.1 * np.sin(2 * np.pi * (600.0 + 40.0 * int(o)) * t)
            for c, o in zip(codes[0], over, strict=True)
        ]
        return np.concatenate(frames).astype(np.float32) if frames else np.zeros(0, np.float32)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def spec_manifest(shards: list[str], fingerprints: dict[str, str] | None = None) -> dict[str, Any]:
    fp = {**FINGERPRINTS, **(fingerprints or {})}
    return {
        "kind": "tokens",
        "tokenizers": {
            "semantic": {
                "name": "synthetic",
                "kind": "semantic",
                "frame_rate": SEMANTIC_RATE,
                "vocab_size": SEMANTIC_VOCAB,
                "num_codebooks": 1,
                "fingerprint": fp["semantic"],
            },
            "acoustic": {
                "name": "synthetic",
                "kind": "acoustic",
                "frame_rate": ACOUSTIC_RATE,
                "vocab_size": ACOUSTIC_VOCAB,
                "num_codebooks": CODEBOOKS,
                "fingerprint": fp["acoustic"],
                "sample_rate": ToneDecoder.sample_rate,
            },
            "text": {"name": "synthetic", "kind": "text", "dim": TEXT_DIM, "fingerprint": fp["text"]},
        },
        "random_weights": True,
        "shards": shards,
    }


def make_synthetic_tokens(
    out_dir: str | Path,
    *,
    clips: int = 64,
    shards: int = 4,
    classes: int = 4,
    seconds: float = 4.0,
    seed: int = 0,
    fingerprints: dict[str, str] | None = None,
    key_prefix: str = "",
    distinct_styles: bool = False,
) -> dict[str, Any]:
    """Write TOKENS-dir style shards + manifest; returns the manifest."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    fp = {**FINGERPRINTS, **(fingerprints or {})}
    samples: list[dict[str, Any]] = []
    for i in range(clips):
        c = i % classes
        ytid = f"{key_prefix}syn{i:08d}"[-11:]
        key = f"{ytid}_{0:08d}_{int(seconds * 1000):08d}"
        phase, n_sem = int(rng.integers(SEMANTIC_VOCAB)), round(seconds * SEMANTIC_RATE)
        sem = banded_semantic_tokens(c, classes, phase, n_sem) if distinct_styles else semantic_tokens(c, phase, n_sem)
        shift = ACOUSTIC_VOCAB // 2 * (c % 2) if distinct_styles else 0
        ac = acoustic_tokens(sem, round(seconds * ACOUSTIC_RATE), shift)
        meta = {
            "ytid": ytid,
            "key": key,
            "caption": caption(c),
            "class": c,
            "tokenizers": fp,
            "frame_rates": {"semantic": SEMANTIC_RATE, "acoustic": ACOUSTIC_RATE},
        }
        samples.append(
            {
                "__key__": key,
                "semantic.npy": _npy(sem),
                "acoustic.npy": _npy(ac),
                "text.npy": _npy(class_embedding(c).astype(np.float16)),
                "json": json.dumps(meta),
                "txt": caption(c),
            }
        )
    names = []
    for s in range(shards):
        part = samples[s::shards]
        name = shard_name("tokens", s)
        write_shard(str(out / "shards" / name), part, {"samples": len(part)})
        names.append(name)
    manifest = spec_manifest(names, fingerprints)
    write_json_atomic(str(out / "manifest.json"), manifest)
    return manifest
