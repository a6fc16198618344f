"""Train's device and precision: bf16 autocast runs on CPU with a loss close to fp32's, what was resolved is
recorded, and cuda asked for where there is none is refused (one line, exit 2, from the CLI)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cadenza.common.devices import DeviceUnavailable, resolve_device
from cadenza.training.synthetic import make_synthetic_tokens
from cadenza.training.trainer import TrainConfig, train

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokens"
    make_synthetic_tokens(out, clips=16, shards=2)
    return out


def _run(tokens, run, **kw):
    cfg = TrainConfig.preset("tiny", str(tokens), str(run), steps=12, batch_size=4, warmup_steps=3, log_every=1,
                             crop_seconds=2.0, shuffle_buffer=8, progress=False, device="cpu", **kw)
    summary = train(cfg)
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    return summary, losses


def test_bf16_autocast_trains_on_cpu_with_a_loss_close_to_fp32(tokens, tmp_path):
    torch.set_num_threads(1)
    fp32, fp32_losses = _run(tokens, tmp_path / "fp32", precision="fp32")
    bf16, bf16_losses = _run(tokens, tmp_path / "bf16", precision="bf16")
    assert (fp32["device"], fp32["precision"]) == ("cpu", "fp32")
    assert (bf16["device"], bf16["precision"]) == ("cpu", "bf16")
    assert len(bf16_losses) == 12 and all(math.isfinite(x) for x in bf16_losses)
    # same seed and data: bf16 follows the fp32 curve (rounding only), and both learn
    for a, b in zip(fp32_losses, bf16_losses, strict=True):
        assert abs(a - b) <= 0.05 * a, (a, b)
    assert bf16_losses[-1] < bf16_losses[0]
    # auto is fp32 on a CPU
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["precision"] == "fp32"


@NO_CUDA
def test_cuda_where_there_is_none_is_refused(tokens, tmp_path, capsys):
    from cadenza.cli import main

    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailable):
        train(TrainConfig.preset("tiny", str(tokens), str(tmp_path / "run"), steps=1, device="cuda", progress=False))
    with pytest.raises(SystemExit) as exited:
        main(["train", "--shards", str(tokens), "--out", str(tmp_path / "cli-run"), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and err[0].startswith("error: --device: cuda asked for")
    assert not (tmp_path / "cli-run").exists()
