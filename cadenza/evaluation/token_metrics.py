"""Metrics over token sequences and audio features; each function is named for what it measures."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def histogram(seqs: Iterable[np.ndarray], vocab: int) -> np.ndarray:
    counts = np.zeros(vocab, dtype=np.float64)
    for s in seqs:
        counts += np.bincount(np.asarray(s).ravel(), minlength=vocab)[:vocab]
    return counts


def entropy_nats(counts: np.ndarray) -> float:
    p = counts / max(counts.sum(), 1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def codebook_usage(counts: np.ndarray) -> dict[str, float]:
    """How much of a codebook is used: fraction of codes seen, entropy and perplexity of their histogram."""
    h = entropy_nats(counts)
    return {
        "used_fraction": float((counts > 0).mean()),
        "entropy_nats": h,
        "entropy_normalized": h / math.log(len(counts)) if len(counts) > 1 else 0.0,
        "perplexity": math.exp(h),
    }


def kl_js(p_counts: np.ndarray, q_counts: np.ndarray, smoothing: float = 0.5) -> dict[str, float]:
    """KL(p || q) and Jensen-Shannon divergence (nats) of two token histograms, add-`smoothing` smoothed."""
    p = (p_counts + smoothing) / (p_counts.sum() + smoothing * len(p_counts))
    q = (q_counts + smoothing) / (q_counts.sum() + smoothing * len(q_counts))
    m = 0.5 * (p + q)
    kl = float((p * np.log(p / q)).sum())
    js = float(0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum())
    return {"kl_heldout_to_generated": kl, "js_divergence": js}


def ngrams(seq: np.ndarray, n: int) -> list[bytes]:
    a = np.ascontiguousarray(np.asarray(seq, dtype=np.int32))
    return [a[i : i + n].tobytes() for i in range(len(a) - n + 1)]


def repetition_diversity(seqs: Sequence[np.ndarray], n: int = 4) -> dict[str, float]:
    """repeated_ngram_fraction: share of a clip's n-grams that occur earlier in the same clip (loops,
    stuck tokens); distinct_ngram_fraction: distinct n-grams over all clips / all n-grams (diversity
    across clips); pairwise_token_mismatch: mean fraction of positions where two clips differ."""
    rep, all_grams = [], []
    for s in seqs:
        g = ngrams(s, n)
        all_grams.extend(g)
        if g:
            rep.append(1.0 - len(set(g)) / len(g))
    pair = []
    for i in range(len(seqs)):
        for j in range(i + 1, len(seqs)):
            m = min(len(seqs[i]), len(seqs[j]))
            if m:
                pair.append(float(np.mean(np.asarray(seqs[i][:m]) != np.asarray(seqs[j][:m]))))
    return {
        "ngram": n,
        "repeated_ngram_fraction": float(np.mean(rep)) if rep else float("nan"),
        "distinct_ngram_fraction": len(set(all_grams)) / len(all_grams) if all_grams else float("nan"),
        "pairwise_token_mismatch": float(np.mean(pair)) if pair else float("nan"),
    }


def ngram_hashes(seq: np.ndarray, n: int) -> np.ndarray:
    """64-bit polynomial hashes of every n-gram of a token sequence (vectorized; wraps mod 2**64)."""
    a = np.asarray(seq).astype(np.uint64) + np.uint64(1)
    if len(a) < n:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(len(a) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * np.uint64(1_000_003) + a[j : j + len(h)]
    return h


def memorization(seqs: Sequence[np.ndarray], train_hashes: np.ndarray, n: int) -> dict[str, float]:
    """How often generated sequences copy training data: share of their n-grams found verbatim in the
    training set (`train_hashes`: sorted unique `ngram_hashes` of the training clips), and share of
    clips with at least one such n-gram."""
    hits, total, clips_hit = 0, 0, 0
    for s in seqs:
        h = ngram_hashes(s, n)
        found = int(np.isin(h, train_hashes, assume_unique=False).sum()) if len(h) else 0
        hits, total, clips_hit = hits + found, total + len(h), clips_hit + (found > 0)
    return {
        "ngram": n,
        "train_ngram_match_fraction": hits / total if total else float("nan"),
        "clips_with_train_ngram": clips_hit / len(seqs) if seqs else float("nan"),
    }


def audio_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-clip vector: mean and std over frames of 20 MFCCs plus spectral centroid and flatness."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    if len(y) < 2048:
        y = np.pad(y, (0, 2048 - len(y)))
    mfcc = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=20, n_fft=1024, hop_length=256)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sample_rate, n_fft=1024, hop_length=256) / sample_rate
    flat = librosa.feature.spectral_flatness(y=y, n_fft=1024, hop_length=256)
    frames = np.concatenate([mfcc, centroid, flat], axis=0)
    return np.concatenate([frames.mean(1), frames.std(1)]).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors [N, D]."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca = np.cov(a, rowvar=False) + eps * np.eye(a.shape[1])
    cb = np.cov(b, rowvar=False) + eps * np.eye(b.shape[1])
    covmean = linalg.sqrtm(ca @ cb)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))
