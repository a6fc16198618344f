"""Training the residual VQ inside transformers' `EncodecModel` quantizer, in place.

EnCodec's recipe: each level quantizes the residual left by the levels before it to its nearest code;
codebooks follow the data by an exponential moving average of the vectors assigned to each code (no
gradient), codes that fall out of use are re-seeded from the current batch, the encoder learns through
a straight-through estimator and a commitment loss. The buffers updated here (`embed`, `embed_avg`,
`cluster_size`) are the ones `EncodecEuclideanCodebook` encodes and decodes with, so the trained
codebooks need no conversion: what was trained is exactly what `cadenza tokenize` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RVQSettings:
    # faster than EnCodec's 0.99: CPU runs are hundreds of steps, not hundreds of thousands
    decay: float = 0.95
    epsilon: float = 1e-5
    # a code whose EMA assignment count falls below this share of a uniform code's count is re-seeded
    dead_share: float = 0.2


def _nearest(residual: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    dist = (residual * residual).sum(1, keepdim=True) - 2 * residual @ embed.T + (embed * embed).sum(1)
    return dist.argmin(1)


@torch.no_grad()
def _ema_update(book, residual: torch.Tensor, codes: torch.Tensor, s: RVQSettings, generator) -> int:
    size = book.embed.shape[0]
    counts = torch.bincount(codes, minlength=size).to(residual.dtype)
    sums = torch.zeros_like(book.embed).index_add_(0, codes, residual)
    book.cluster_size.mul_(s.decay).add_(counts, alpha=1 - s.decay)
    book.embed_avg.mul_(s.decay).add_(sums, alpha=1 - s.decay)
    total = book.cluster_size.sum()
    smoothed = (book.cluster_size + s.epsilon) / (total + size * s.epsilon) * total
    book.embed.copy_(book.embed_avg / smoothed[:, None])
    # re-seed unused codes from this batch's residuals; their statistics restart as one assignment
    dead = book.cluster_size < s.dead_share * len(residual) / size
    n_dead = int(dead.sum())
    if n_dead:
        picks = residual[torch.randint(0, len(residual), (n_dead,), generator=generator)]
        book.embed[dead] = picks
        book.embed_avg[dead] = picks
        book.cluster_size[dead] = 1.0
    return n_dead


def quantize_train(quantizer, embeddings: torch.Tensor, num_quantizers: int, settings: RVQSettings,
                   *, update: bool, generator: torch.Generator | None = None):
    """[B, D, T] encoder output -> (straight-through quantized [B, D, T], commitment loss, codes [Q, B, T],
    codes re-seeded). With `update`, codebooks move toward this batch (training)."""
    batch, dim, frames = embeddings.shape
    flat = embeddings.permute(0, 2, 1).reshape(-1, dim)
    residual, quantized = flat, torch.zeros_like(flat)
    commitment = flat.new_zeros(())
    codes, reseeded = [], 0
    for layer in quantizer.layers[:num_quantizers]:
        book = layer.codebook
        idx = _nearest(residual.detach(), book.embed)
        q = book.embed[idx].detach()
        commitment = commitment + torch.nn.functional.mse_loss(residual, q)
        if update:
            reseeded += _ema_update(book, residual.detach(), idx, settings, generator)
        quantized = quantized + q
        residual = residual - q
        codes.append(idx.view(batch, frames))
    straight_through = flat + (quantized - flat).detach()
    return straight_through.view(batch, frames, dim).permute(0, 2, 1), commitment, torch.stack(codes), reseeded
