"""Every headline metric of `cadenza evaluate` ranks a trained model above broken ones.

A tiny model trains on a synthetic set whose four styles sound different and need the caption in both
stages; it is evaluated as trained, at step 0, with its captions shuffled at sampling time, and against
"perfect" samples (held-out reconstructions). See cadenza/evaluation/validity.py for the expected orders.
"""

from __future__ import annotations

import json

import pytest
import torch

from cadenza.evaluation.evaluate import EvalConfig
from cadenza.evaluation.validity import run_validity
from cadenza.training.synthetic import ToneDecoder, make_synthetic_tokens
from cadenza.training.trainer import TrainConfig, train

torch.set_num_threads(1)
CLASSES, HELDOUT = 4, 24


@pytest.fixture(scope="module")
def validity(tmp_path_factory):
    root = tmp_path_factory.mktemp("validity")
    make_synthetic_tokens(root / "tok", clips=64, shards=2, classes=CLASSES, seconds=3.0, distinct_styles=True)
    make_synthetic_tokens(root / "held", clips=HELDOUT, shards=1, classes=CLASSES, seconds=3.0, seed=5,
                          key_prefix="h", distinct_styles=True)
    train(TrainConfig.preset("tiny", str(root / "tok"), str(root / "run"), steps=150, progress=False,
                             crop_seconds=2.0))
    labels = {f"hsyn{i:08d}"[-11:]: f"style{i % CLASSES}" for i in range(HELDOUT)}
    cfg = EvalConfig(num_samples=HELDOUT, seconds=2.0, write_wavs=False)
    return root, run_validity(root / "run", str(root / "held"), root / "val", config=cfg, labels=labels,
                              decoder=ToneDecoder())


@pytest.mark.slow
@pytest.mark.parametrize(
    "metric", ["caption_gain_semantic", "caption_gain_acoustic", "adherence", "adherence_semantic_tokens", "kad", "fd"]
)
def test_metric_separates_good_from_broken_models(validity, metric):
    _, res = validity
    assert res["verdicts"][metric]["separates"], json.dumps(res["models"], indent=1)


@pytest.mark.slow
def test_trained_model_clears_chance_and_floor_broken_ones_do_not(validity):
    root, res = validity
    m = res["models"]
    assert m["trained"]["adherence"] >= 3 * m["trained"]["chance"]
    assert m["trained"]["caption_gain_semantic_ci95"][0] > 0 and m["trained"]["caption_gain_acoustic_ci95"][0] > 0
    for stage in ("semantic", "acoustic"):  # sanity check, not an ordering: "perfect" scores the trained likelihood
        assert m["perfect"][f"caption_gain_{stage}"] == m["trained"][f"caption_gain_{stage}"]
    # untrained samples are far from the data: KAD well above the two-halves floor of the references
    assert m["untrained"]["kad_ci95"][0] > m["untrained"]["kad_floor"]
    # the step-0 model's samples of most styles sit nearer other styles than their own; the trained one's do not
    assert m["trained"]["mainstream_flagged"] == [] and len(m["untrained"]["mainstream_flagged"]) >= 2
    written = json.loads((root / "val" / "trained" / "metrics.json").read_text())
    assert written["control"] == "none" and written["caption_gain"]["clips_with_other_group_caption"] == HELDOUT
    assert json.loads((root / "val" / "shuffled" / "metrics.json").read_text())["control"] == "shuffled_captions"
    html = (root / "val" / "trained" / "report.html").read_text()
    assert "Caption information gain" in html and "Prompt adherence" in html and "Pull toward the mainstream" in html
