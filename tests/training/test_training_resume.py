"""Exact resume from non-pickle checkpoints, and refusal of foreign shards at resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from cadenza.formats.token_spec import FingerprintMismatch
from cadenza.training.synthetic import make_synthetic_tokens
from cadenza.training.trainer import TrainConfig, train

torch.set_num_threads(2)


def _cfg(tokens, run, **kw) -> TrainConfig:
    base = dict(
        steps=12,
        schedule_steps=12,
        batch_size=4,
        grad_accum=2,
        warmup_steps=3,
        log_every=2,
        ckpt_every=3,
        shuffle_buffer=16,
        crop_seconds=2.0,
    )
    return TrainConfig.preset("tiny", str(tokens), str(run), **{**base, **kw})


def _weights(run):
    latest = json.loads((run / "checkpoints/latest.json").read_text())["path"]
    return load_file(run / "checkpoints" / latest / "model.safetensors")


def test_resume_matches_an_uninterrupted_run(tmp_path):
    make_synthetic_tokens(tmp_path / "tok", clips=20, shards=3)
    train(_cfg(tmp_path / "tok", tmp_path / "straight"))
    train(_cfg(tmp_path / "tok", tmp_path / "halves", steps=6))
    summary = train(_cfg(tmp_path / "tok", tmp_path / "halves", resume=True))
    assert summary["steps"] == 12

    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "halves")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    def curve(run):
        return [
            (x["step"], round(x["loss"], 5)) for x in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        ]

    assert curve(tmp_path / "straight") == curve(tmp_path / "halves")

    # checkpoints hold only safetensors and JSON: nothing to unpickle
    ckpt = tmp_path / "halves/checkpoints"
    files = {p.suffix for d in ckpt.glob("step-*") for p in d.iterdir()}
    assert files == {".safetensors", ".json"}
    state = json.loads(next(ckpt.glob("step-*/state.json")).read_text())
    assert {"rng", "optimizer", "schedule", "data", "model_configs", "token_spec"} <= state.keys()


def test_resume_refuses_shards_of_other_tokenizers(tmp_path):
    make_synthetic_tokens(tmp_path / "a", clips=8, shards=1)
    make_synthetic_tokens(tmp_path / "b", clips=8, shards=1, fingerprints={"semantic": "other-kmeans"})
    train(_cfg(tmp_path / "a", tmp_path / "run", steps=2, ckpt_every=2))
    with pytest.raises(FingerprintMismatch, match="semantic"):
        train(_cfg(tmp_path / "b", tmp_path / "run", steps=4, resume=True))


def test_resume_between_metrics_lines_logs_the_same_curve(tmp_path):
    """A checkpoint between two metrics lines carries the pending loss sums, so the next line is the same."""
    import shutil

    make_synthetic_tokens(tmp_path / "tok", clips=12, shards=2)
    kw = dict(steps=6, schedule_steps=6, log_every=2, ckpt_every=3)
    train(_cfg(tmp_path / "tok", tmp_path / "straight", **kw))
    # what a kill right after the step-3 checkpoint leaves: latest -> step 3, metrics up to step 4
    shutil.copytree(tmp_path / "straight", tmp_path / "killed")
    (tmp_path / "killed/checkpoints/latest.json").write_text(json.dumps({"path": "step-00000003", "step": 3}))
    train(_cfg(tmp_path / "tok", tmp_path / "killed", **kw, resume=True))

    def curve(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], round(r["loss"], 5)) for r in rows]

    assert curve(tmp_path / "killed") == curve(tmp_path / "straight")
    assert [s for s, _ in curve(tmp_path / "straight")] == [2, 4, 6]


def test_resume_without_a_checkpoint_starts_over_without_old_metrics(tmp_path):
    make_synthetic_tokens(tmp_path / "tok", clips=8, shards=1)
    run = tmp_path / "run"
    run.mkdir()
    # what a run killed before its first checkpoint leaves: metrics lines, the last one torn
    (run / "metrics.jsonl").write_text('{"step": 2, "split": "train", "loss": 9.0}\n{"step": 4, "spl')
    train(_cfg(tmp_path / "tok", run, steps=4, ckpt_every=4, resume=True))
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
