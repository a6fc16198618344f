"""Two-process DDP over gloo on CPU, started by torchrun like a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cadenza.training.synthetic import make_synthetic_tokens
from cadenza.training.trainer import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_gloo_run_trains_on_disjoint_shards(tmp_path):
    make_synthetic_tokens(tmp_path / "tok", clips=16, shards=4)
    cfg = TrainConfig.preset(
        "tiny",
        str(tmp_path / "tok"),
        str(tmp_path / "run"),
        steps=6,
        batch_size=4,
        log_every=2,
        ckpt_every=6,
        warmup_steps=2,
        crop_seconds=2.0,
    )
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "cadenza.training.trainer",
        str(tmp_path / "cfg.json"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    rank0, rank1 = (set(s) for s in summary["shards_by_rank"])
    assert rank0 and rank1 and not rank0 & rank1
    assert len(rank0 | rank1) == 4
    assert all(d["samples"] > 0 for d in summary["data_by_rank"])
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6]  # rank 0 alone writes
    assert (tmp_path / "run/checkpoints/step-00000006/model.safetensors").exists()
