"""A small decoder-only transformer for both MusicLM-style stages, in plain PyTorch.

Sequence layout of one stage:  [text] [prefix tokens ...] [BOS] [frame 0] ... [frame T-2]
and the outputs at [BOS]..[frame T-2] predict frames 0..T-1.

- semantic stage: no prefix tokens, one token stream (the semantic tokens);
- acoustic stage: the semantic tokens are the prefix, K token streams interleaved with the delay
  pattern (one decoder step = one delayed frame = K embeddings summed, K output heads).

The caption embedding enters as the first position; in training it is replaced by a learned "null"
vector with probability `cfg_dropout`, which is what classifier-free guidance needs at sampling time.
Positions restart at 0 in each segment (sinusoids + a learned segment embedding), so a padded prefix
does not shift the positions of the tokens after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.common.config import StageConfig
from cadenza.training.delay import delay, delay_valid

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 4},
    "small": {"d_model": 512, "n_layers": 8, "n_heads": 8},
}


# saved in every checkpoint; read back strictly: a config from a newer or foreign model names fields this one
# lacks, and guessing would build the wrong network
@dataclass
class ModelConfig(StageConfig):
    vocab_size: int  # codes per stream
    num_streams: int = 1  # 1 for semantic, K (codebooks) for acoustic
    prefix_vocab: int = 0  # semantic vocab for the acoustic stage, 0 for none
    align_ratio: float = 0.0  # prefix frames per token step (semantic rate / acoustic rate); 0 = no alignment
    text_dim: int = 384
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.0
    cfg_dropout: float = 0.1

    @property
    def special(self) -> int:  # "no code here" cell of the delay pattern
        return self.vocab_size

    @property
    def bos(self) -> int:
        return self.vocab_size + 1


def sinusoids(positions: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class KVCache:
    """Keys/values of every layer for the positions seen so far."""

    def __init__(self, n_layers: int):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers

    @property
    def length(self) -> int:
        first = self.layers[0]
        return 0 if first is None else first[0].shape[2]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x, mask, cache: KVCache | None, layer: int):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            past = cache.layers[layer]
            if past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            cache.layers[layer] = (k, v)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.ff_mult * cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.ff_mult * cfg.d_model, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, mask, cache, layer):
        x = x + self.attn(self.ln1(x), mask, cache, layer)
        return x + self.mlp(self.ln2(x))


class StageLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.null_text = nn.Parameter(torch.zeros(d))
        self.segment = nn.Embedding(3, d)  # text, prefix, tokens
        self.prefix_emb = nn.Embedding(cfg.prefix_vocab, d) if cfg.prefix_vocab else None
        # the semantic token under each acoustic frame, added to that frame's input: the acoustic
        # stage then needs no attention to find "where am I" in the prefix
        self.align_emb = nn.Embedding(cfg.prefix_vocab, d) if cfg.prefix_vocab and cfg.align_ratio else None
        self.tok_emb = nn.ModuleList(nn.Embedding(cfg.vocab_size + 2, d) for _ in range(cfg.num_streams))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, cfg.vocab_size, bias=False) for _ in range(cfg.num_streams))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- pieces shared by training and generation -------------------------------------------------
    def embed_prefix(self, text: torch.Tensor, use_text: torch.Tensor, prefix: torch.Tensor | None) -> torch.Tensor:
        """[B, 1 + P, D]: the caption (or the null vector where use_text is False) then prefix tokens."""
        d = self.cfg.d_model
        t = torch.where(use_text[:, None], self.text_proj(text), self.null_text.to(text.dtype)[None, :])
        parts = [(t + self.segment.weight[0])[:, None, :]]
        if prefix is not None:
            assert self.prefix_emb is not None, "this stage takes no prefix tokens"
            pos = sinusoids(torch.arange(prefix.shape[1], device=prefix.device), d)
            parts.append(self.prefix_emb(prefix) + pos + self.segment.weight[1])
        return torch.cat(parts, dim=1)

    def embed_tokens(
        self,
        tokens: torch.Tensor,
        start: int,
        prefix: torch.Tensor | None = None,
        prefix_len: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens [B, K, T] (input side: BOS first) at steps start.. -> [B, T, D].

        Input step t predicts frame t (codebook 0), so it gets the prefix token at t * align_ratio."""
        x = sum(emb(tokens[:, k]) for k, emb in enumerate(self.tok_emb))
        steps = torch.arange(start, start + tokens.shape[2], device=tokens.device)
        if self.align_emb is not None and prefix is not None:
            n = (
                prefix_len
                if prefix_len is not None
                else torch.full((prefix.shape[0],), prefix.shape[1], device=prefix.device)
            )
            idx = torch.minimum((steps.double() * self.cfg.align_ratio).floor().long()[None, :], n[:, None] - 1)
            x = x + self.align_emb(torch.gather(prefix, 1, idx.clamp(min=0)))
        return x + sinusoids(steps, self.cfg.d_model) + self.segment.weight[2]

    def run(self, x: torch.Tensor, key_valid: torch.Tensor | None = None, cache: KVCache | None = None):
        """Causal pass over x [B, T, D] after the cached positions; returns logits [B, K, T, V]."""
        b, t, _ = x.shape
        past = cache.length if cache is not None else 0
        mask = None
        if t > 1 or key_valid is not None:
            q = torch.arange(past, past + t, device=x.device)[:, None]
            mask = (torch.arange(past + t, device=x.device)[None, :] <= q)[None, None]
            if key_valid is not None:
                mask = mask & key_valid[:, None, None, :]
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i)
        h = self.ln_f(x)
        return torch.stack([head(h) for head in self.heads], dim=1)

    # -- training ------------------------------------------------------------------------------------
    def loss(
        self,
        text: torch.Tensor,
        use_text: torch.Tensor,
        codes: torch.Tensor,
        lengths: torch.Tensor,
        prefix: torch.Tensor | None = None,
        prefix_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean NLL, plus summed NLL [B, K] and target counts [B, K] per clip and stream (for metrics).

        codes [B, K, T] (K = 1 for the semantic stage), lengths [B] real frames per clip.
        """
        cfg = self.cfg
        k = cfg.num_streams
        target = delay(codes, cfg.special)  # K = 1: unchanged
        steps = target.shape[2]
        valid = delay_valid(lengths, k, steps)
        # cells past a clip's end hold `special`, exactly what generation feeds back there
        target = target.masked_fill(~valid, cfg.special)
        bos = target.new_full((target.shape[0], k, 1), cfg.bos)
        inputs = torch.cat([bos, target[:, :, :-1]], dim=2)
        prefix_len = prefix_mask.sum(1) if prefix_mask is not None else None
        tok = self.embed_tokens(inputs, 0, prefix, prefix_len)
        x = torch.cat([self.embed_prefix(text, use_text, prefix), tok], dim=1)
        key_valid = None
        if prefix_mask is not None:
            ones = torch.ones(x.shape[0], 1 + steps, dtype=torch.bool, device=x.device)
            key_valid = torch.cat([ones[:, :1], prefix_mask, ones[:, 1:]], dim=1)
        logits = self.run(x, key_valid)[:, :, -steps:]  # [B, K, steps, V]
        nll = F.cross_entropy(
            logits.float().reshape(-1, cfg.vocab_size),
            target.clamp(max=cfg.vocab_size - 1).reshape(-1),
            reduction="none",
        ).view_as(target)
        nll = nll * valid
        sums, counts = nll.sum(dim=2), valid.sum(dim=2)
        return sums.sum() / counts.sum().clamp(min=1), sums.detach(), counts


class MusicLM(nn.Module):
    """The two stages, trained together on the same batches."""

    def __init__(self, semantic: ModelConfig, acoustic: ModelConfig):
        super().__init__()
        self.semantic = StageLM(semantic)
        self.acoustic = StageLM(acoustic)

    @classmethod
    def build(cls, size: str | dict[str, Any], spec) -> MusicLM:
        """`size` is a preset name or a dict of ModelConfig fields; vocabularies come from the TokenSpec."""
        arch = dict(PRESETS[size]) if isinstance(size, str) else dict(size)
        if isinstance(size, str) and size not in PRESETS:
            raise ValueError(f"unknown model size {size!r}; choose from {sorted(PRESETS)}")
        sem = ModelConfig(vocab_size=spec.semantic_vocab, text_dim=spec.text_dim, **arch)
        ac = ModelConfig(
            vocab_size=spec.acoustic_vocab,
            num_streams=spec.num_codebooks,
            prefix_vocab=spec.semantic_vocab,
            align_ratio=spec.semantic_rate / spec.acoustic_rate,
            text_dim=spec.text_dim,
            **arch,
        )
        return cls(sem, ac)

    def configs(self) -> dict[str, Any]:
        return {"semantic": self.semantic.cfg.to_dict(), "acoustic": self.acoustic.cfg.to_dict()}

    @classmethod
    def from_configs(cls, d: dict[str, Any]) -> MusicLM:
        return cls(ModelConfig.from_dict(d["semantic"]), ModelConfig.from_dict(d["acoustic"]))

    def forward(self, batch: dict[str, Any], cfg_drop: bool = True) -> dict[str, torch.Tensor]:
        """Losses of both stages on one batch (forward, so DDP sees it)."""
        text, has_text = batch["text"], batch["has_text"]
        use_text = has_text
        if cfg_drop and self.training:
            p = self.semantic.cfg.cfg_dropout
            use_text = has_text & (torch.rand(has_text.shape, device=has_text.device) >= p)
        sem_len = batch["semantic_mask"].sum(1)
        ac_len = batch["acoustic_mask"].sum(1)
        sem_loss, sem_nll, sem_n = self.semantic.loss(text, use_text, batch["semantic"][:, None], sem_len)
        ac_loss, ac_nll, ac_n = self.acoustic.loss(
            text, use_text, batch["acoustic"], ac_len, prefix=batch["semantic"], prefix_mask=batch["semantic_mask"]
        )
        return {
            "loss": sem_loss + ac_loss,
            "loss_semantic": sem_loss,
            "loss_acoustic": ac_loss,
            "nll_semantic": sem_nll,
            "count_semantic": sem_n,
            "nll_acoustic": ac_nll,
            "count_acoustic": ac_n,
        }
