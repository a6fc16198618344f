"""Token and feature metrics used by `cadenza evaluate`."""

from __future__ import annotations

import math

import numpy as np

from cadenza.evaluation import token_metrics as tm


def test_memorization_finds_copied_ngrams_only():
    rng = np.random.default_rng(0)
    train = [rng.integers(0, 100, 200) for _ in range(5)]
    hashes = np.unique(np.concatenate([tm.ngram_hashes(s, 8) for s in train]))
    copied = train[2][50:90]
    fresh = rng.integers(0, 100, 40)
    m = tm.memorization([copied, fresh], hashes, 8)
    assert m["clips_with_train_ngram"] == 0.5
    assert m["train_ngram_match_fraction"] == 0.5  # 33 of 33 n-grams copied, 0 of 33 fresh
    assert len(tm.ngram_hashes(np.arange(5), 8)) == 0


def test_divergences_usage_and_repetition():
    p = np.array([10.0, 10, 0, 0])
    same = tm.kl_js(p, p)
    assert same["js_divergence"] < 1e-12 and abs(same["kl_heldout_to_generated"]) < 1e-12
    far = tm.kl_js(p, np.array([0.0, 0, 10, 10]))
    assert 0.5 < far["js_divergence"] <= math.log(2)
    u = tm.codebook_usage(np.array([5.0, 5, 5, 5]))
    assert u["used_fraction"] == 1.0 and abs(u["entropy_normalized"] - 1.0) < 1e-12
    loop = np.tile([1, 2, 3], 10)
    r = tm.repetition_diversity([loop, loop], n=3)
    assert r["repeated_ngram_fraction"] > 0.8 and r["pairwise_token_mismatch"] == 0.0
    r2 = tm.repetition_diversity([np.arange(30), np.arange(30, 60)], n=3)
    assert r2["repeated_ngram_fraction"] == 0.0 and r2["distinct_ngram_fraction"] == 1.0


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((400, 3))
    assert tm.frechet_distance(a, rng.standard_normal((400, 3))) < 0.1
    assert abs(tm.frechet_distance(a, a + 2.0) - 12.0) < 0.5  # mean shift of 2 in 3 dims
    assert math.isnan(tm.frechet_distance(a[:1], a))
