"""What a token dir holds, read from TOKENS/manifest.json: vocabularies, frame rates, codebooks, text
dimension and the tokenizers' fingerprints, so that data made by other tokenizers is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cadenza.formats.shards import list_shards
from cadenza.formats.storage import read_json

STAGES = ("semantic", "acoustic", "text")


class FingerprintMismatch(ValueError):
    """Shards, manifest or checkpoint were made by different tokenizers."""


@dataclass
class TokenSpec:
    """What the token shards contain, read from TOKENS/manifest.json."""

    semantic_vocab: int
    semantic_rate: float
    acoustic_vocab: int
    acoustic_rate: float
    num_codebooks: int
    text_dim: int
    fingerprints: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenSpec:
        fields = set(cls.__dataclass_fields__)
        if set(d) != fields:
            raise ValueError(f"token spec fields: unknown {sorted(set(d) - fields)}, missing {sorted(fields - set(d))}")
        return cls(**d)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str = "manifest") -> TokenSpec:
        if manifest.get("kind") != "tokens":
            raise ValueError(f"{where}: not a token manifest (kind={manifest.get('kind')!r})")
        tok = manifest.get("tokenizers") or {}
        try:
            sem, ac = tok["semantic"], tok["acoustic"]
        except KeyError as exc:
            raise ValueError(f"{where}: tokenizers.{exc.args[0]} missing") from exc
        text = tok.get("text") or {}
        return cls(
            semantic_vocab=int(sem["vocab_size"]),
            semantic_rate=float(sem["frame_rate"]),
            acoustic_vocab=int(ac["vocab_size"]),
            acoustic_rate=float(ac["frame_rate"]),
            num_codebooks=int(ac["num_codebooks"]),
            text_dim=int(text.get("dim") or text.get("embedding_dim") or 384),
            fingerprints={s: (tok.get(s) or {}).get("fingerprint") for s in STAGES},
        )

    def check_same(self, other: TokenSpec, what: str) -> None:
        """Refuse data made by other tokenizers than the ones `self` was made with."""
        for stage in STAGES:
            a, b = self.fingerprints.get(stage), other.fingerprints.get(stage)
            if a != b:
                raise FingerprintMismatch(f"{what}: {stage} tokenizer fingerprint {b} != expected {a}")


def load_token_dir(tokens_dir: str) -> tuple[dict[str, Any], list[str]]:
    """(manifest, completed shard paths) of a tokenize output dir."""
    manifest = read_json(f"{tokens_dir.rstrip('/')}/manifest.json")
    shards = list_shards(f"{tokens_dir.rstrip('/')}/shards")
    if not shards:
        raise ValueError(f"{tokens_dir}: no completed token shards in shards/")
    return manifest, shards
