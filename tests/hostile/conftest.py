"""A tiny trained run shared by the hostile checkpoint and held-out tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.training.synthetic import make_synthetic_tokens
from cadenza.training.trainer import TrainConfig, train


def tiny_cfg(tokens: Path, run: Path, **kw) -> TrainConfig:
    base = dict(steps=2, schedule_steps=2, batch_size=4, warmup_steps=1, log_every=1, ckpt_every=2,
                shuffle_buffer=8, crop_seconds=1.0)
    return TrainConfig.preset("tiny", str(tokens), str(run), **{**base, **kw})


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(tokens dir, run dir) of a 2-step tiny run on synthetic tokens."""
    root = tmp_path_factory.mktemp("trained")
    make_synthetic_tokens(root / "tok", clips=8, shards=2, seconds=2.0)
    train(tiny_cfg(root / "tok", root / "run"))
    return root / "tok", root / "run"
