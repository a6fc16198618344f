"""KAD/FD with CIs and a reference floor, adherence, mainstream pull and caption-gain donors, on arrays."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.evaluation import gen_metrics as gm
from cadenza.evaluation.caption_gain import mismatch_donors
from cadenza.evaluation.embeddings import EmbeddingError, make_embedder


def _styles(n_per: int, shift: float, seed: int, dim: int = 6) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal((n_per, dim)) + shift * np.eye(dim)[c] for c in range(3)])
    return x, [f"s{c}" for c in range(3) for _ in range(n_per)]


def test_kad_is_unbiased_near_zero_for_same_distribution_and_large_for_shifted():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 5)), rng.standard_normal((40, 5))
    bw = gm.median_bandwidth(np.concatenate([a, b]))
    same = [gm.kad(rng.standard_normal((10, 5)), rng.standard_normal((10, 5)), bw) for _ in range(200)]
    assert abs(np.mean(same)) < 0.01  # unbiased: averages to zero at n = 10, where the biased MMD does not
    assert gm.kad(a, b + 3.0, bw) > 0.3


def test_distances_compare_with_the_half_split_floor():
    ref, _ = _styles(10, 4.0, 1)
    good, _ = _styles(6, 4.0, 2)
    bad = good * 0.2 + 5.0
    d_good, d_bad = gm.distances(good, ref, boots=100), gm.distances(bad, ref, boots=100)
    assert d_good["kad"]["ci95"][0] <= d_good["kad"]["value"] <= d_good["kad"]["ci95"][1]
    assert not d_good["kad_above_floor"] and d_bad["kad_above_floor"]
    assert d_bad["kad"]["value"] > d_good["kad"]["value"] and d_bad["fd"]["value"] > d_good["fd"]["value"]
    assert d_good["kad_floor"]["ci95"][0] <= d_good["kad_floor"]["value"] <= d_good["kad_floor"]["ci95"][1]


def test_adherence_and_mainstream_pull():
    ref, ref_lab = _styles(8, 5.0, 3)
    gen, gen_lab = _styles(5, 5.0, 4)
    a = gm.adherence(ref, ref_lab, gen, gen_lab)
    assert a["accuracy"] > 0.9 and a["above_chance"] and a["chance"] == pytest.approx(1 / 3)
    assert a["reference_accuracy_cv"] > 0.9 and set(a["per_label"]) == {"s0", "s1", "s2"}
    # samples of s2 that all sound like s0: misclassified and flagged as pulled toward the rest
    pulled = gen.copy()
    pulled[np.array(gen_lab) == "s2"] = ref[np.array(ref_lab) == "s0"][:5]
    a2 = gm.adherence(ref, ref_lab, pulled, gen_lab)
    assert a2["per_label"]["s2"]["accuracy"] == 0.0 and a2["accuracy"] < a["accuracy"]
    assert gm.mainstream_pull(ref, ref_lab, pulled, gen_lab)["flagged"] == ["s2"]
    assert gm.mainstream_pull(ref, ref_lab, gen, gen_lab)["flagged"] == []
    assert "skipped" in gm.adherence(ref, ["one"] * len(ref), gen, gen_lab)


def test_mismatch_donors_take_other_groups_and_other_captions():
    texts = [np.full(3, i % 4, np.float32) for i in range(12)]
    groups = [f"g{i % 2}" for i in range(12)]
    donors, cross = mismatch_donors(texts, groups, draws=3)
    assert cross == 12
    for i, ds in enumerate(donors):
        assert len(ds) == 3 and all(groups[j] != groups[i] and not np.array_equal(texts[j], texts[i]) for j in ds)
    donors, cross = mismatch_donors(texts, [None] * 12, draws=2)
    assert cross == 0 and all(j != i and i % 4 != j % 4 for i, ds in enumerate(donors) for j in ds)


def test_embedding_choices(tmp_path):
    audio = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    assert make_embedder("mfcc", None)(audio, 16000, np.zeros((2, 5))).shape == (44,)
    with pytest.raises(EmbeddingError, match="download"):
        make_embedder(f"hf:{tmp_path / 'clap'}", None)
    with pytest.raises(EmbeddingError, match="no EnCodec quantizer"):
        make_embedder("encodec", object())
    with pytest.raises(EmbeddingError, match="choose mfcc"):
        make_embedder("clap", None)


def test_encodec_embeddings_follow_the_codes():
    from cadenza.tokenizers.acoustic_loading import load_acoustic

    codec = load_acoustic("encodec_24khz", random_init=True, small=True, optimize="eager")
    embed = make_embedder("encodec", codec)
    rng = np.random.default_rng(0)
    a = rng.integers(0, codec.vocab_size, (codec.num_codebooks, 20))
    b = rng.integers(0, codec.vocab_size, (codec.num_codebooks, 20))
    ea, eb = embed(np.zeros(10), codec.sample_rate, a), embed(np.zeros(10), codec.sample_rate, b)
    assert ea.ndim == 1 and ea.shape == eb.shape and not np.allclose(ea, eb)
    assert np.allclose(ea, embed(np.zeros(10), codec.sample_rate, a))


def test_hf_embeddings_from_a_local_model_directory(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    cfg = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                         num_conv_pos_embedding_groups=2)
    Wav2Vec2Model(cfg).save_pretrained(tmp_path / "w2v")
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path / "w2v")
    embed = make_embedder(f"hf:{tmp_path / 'w2v'}", None)
    t = np.arange(8000) / 8000
    low, high = (np.sin(2 * np.pi * f * t).astype(np.float32) for f in (200, 2000))
    e_low, e_high = embed(low, 8000, np.zeros((1, 1))), embed(high, 8000, np.zeros((1, 1)))
    assert e_low.shape == (16,) and not np.allclose(e_low, e_high)


def test_caption_gain_is_zero_for_a_model_that_ignores_text_and_not_otherwise(tmp_path):
    import torch

    from cadenza.evaluation.caption_gain import CaptionGain
    from cadenza.evaluation.evaluate import _clips
    from cadenza.formats.token_spec import TokenSpec, load_token_dir
    from cadenza.training.data import LoaderConfig, TokenStream
    from cadenza.training.model import MusicLM
    from cadenza.training.synthetic import make_synthetic_tokens

    manifest = make_synthetic_tokens(tmp_path / "tok", clips=8, shards=1, distinct_styles=True)
    spec = TokenSpec.from_manifest(manifest)
    _, shards = load_token_dir(str(tmp_path / "tok"))
    clips = _clips(TokenStream(shards, spec, LoaderConfig(4, 1.0, train=False)))
    torch.manual_seed(0)
    model = MusicLM.build("tiny", spec).eval()
    groups = [f"s{i % 4}" for i in range(len(clips))]
    for stage in (model.semantic, model.acoustic):  # a model deaf to its text
        torch.nn.init.zeros_(stage.text_proj.weight)
    deaf = CaptionGain(model, clips, spec, groups=groups, boots=50).summary()
    assert deaf["clips"] == 8 and deaf["clips_with_other_group_caption"] == 8
    assert deaf["semantic"]["gain"] == 0.0 and deaf["acoustic"]["gain"] == 0.0
    assert len(deaf["acoustic_per_codebook"]) == spec.num_codebooks
    for stage in (model.semantic, model.acoustic):
        torch.nn.init.normal_(stage.text_proj.weight, std=1.0)
    listening = CaptionGain(model, clips, spec, groups=groups, boots=50)
    assert listening.summary()["semantic"]["gain"] != 0.0
    assert listening.summary({clips[0]["key"], clips[1]["key"]})["clips"] == 2
