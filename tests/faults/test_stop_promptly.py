"""The README's two timing promises, measured on real processes: Ctrl-C or SIGTERM stops `ingest` within a
second although its fetches would take half a minute more, and a second Ctrl-C stops `train` at once
while the first one's graceful stop (end the step, write a checkpoint) is still under way.

Each time is taken from the signal to the command's exit (its process polled every 5 ms) and must be under
STOP_BOUND_S: the promised second plus half a second of slack for a loaded 2-core machine.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from faultkit import Running, cli_env
from ingest_testkit import media_dir, write_csv  # noqa: F401 (media_dir is a fixture)
from test_interrupt_resume import STOP_BOUND_S

from cadenza.testing.mediaserver import MediaServer
from cadenza.training.synthetic import make_synthetic_tokens

pytestmark = pytest.mark.slow
HANG_S = 30.0  # every request the media server answers only after this long


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def _wait_until(condition, run: Running, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert run.alive(), f"cadenza {run.name} ended before the signal: {run.stderr()[-3000:]!r}"
        assert time.monotonic() < deadline, f"cadenza {run.name}: nothing to signal after {timeout_s} s"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ingest_stops_within_a_second_with_fetches_in_flight(media_dir, tmp_path, sig):  # noqa: F811
    rows = [(y, 0, 4) for y in ("goodAAAAAAA", "goodBBBBBBB", "goodCCCCCCC")]
    csv = write_csv(tmp_path / "mc.csv", rows)
    out = tmp_path / "out"
    with MediaServer(media_dir, latency_s=HANG_S) as srv:
        run = Running(["ingest", "--csv", str(csv), "--source-url-template", srv.url_template("m4a"),
                       "--out", str(out), "--shard-size", "3", "--ontology", "none", "--no-progress"], cli_env())
        _wait_until(lambda: len(srv.request_log) > 0, run)  # a fetch is waiting on the server
        time.sleep(0.3)
        sent = run.signal_group(sig)
        stop_s = run.wait(60) - sent
        survivors = run.reap_group()
        line = _one_line(run.stderr())
    print(f"ingest {sig.name}: stopped {stop_s:.3f} s after the signal")
    assert run.proc.returncode == 128 + sig, line
    assert stop_s <= STOP_BOUND_S, f"ingest stopped {stop_s:.3f} s after {sig.name}"
    assert survivors == 0, f"{survivors} processes of the group still alive"
    assert line.startswith(f"error: interrupted by {sig.name}: 0 complete audio shards kept"), line
    assert "resume with: cadenza ingest " in line, line


def test_train_second_sigint_stops_at_once_during_the_first_ones_graceful_stop(tmp_path):
    # steps of about a second or more on a 2-core machine: the first signal's stop has a step to finish
    make_synthetic_tokens(tmp_path / "tok", clips=16, shards=2, seconds=10.0)
    cfg = dict(model={"d_model": 192, "n_layers": 4, "n_heads": 4}, steps=200, batch_size=8, grad_accum=1,
               crop_seconds=10.0, warmup_steps=2, log_every=1, ckpt_every=1000, shuffle_buffer=16, num_workers=0,
               progress=False)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    out = tmp_path / "run"
    run = Running(["train", "--shards", str(tmp_path / "tok"), "--config", str(tmp_path / "cfg.json"),
                   "--out", str(out)], cli_env(OMP_NUM_THREADS="1"))
    metrics = out / "metrics.jsonl"
    _wait_until(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2, run)  # two steps ended
    first = run.signal_group(signal.SIGINT)  # now inside a step: the stop waits for it and its checkpoint
    time.sleep(0.3)
    assert run.alive(), "the first SIGINT's graceful stop ended within 0.3 s: no second signal to test"
    second = run.signal_group(signal.SIGINT)
    ended = run.wait(60)
    survivors = run.reap_group()
    line = _one_line(run.stderr())
    print(f"train: second SIGINT -> exit {ended - second:.3f} s (first SIGINT {ended - first:.3f} s before exit)")
    assert run.proc.returncode == 130, line
    assert ended - second <= STOP_BOUND_S, f"train stopped {ended - second:.3f} s after the second SIGINT"
    assert survivors == 0, f"{survivors} processes of the group still alive"
    # the graceful stop never finished: no checkpoint of the step it was ending, no "checkpoint kept" line
    assert not (out / "checkpoints" / "latest.json").exists(), line
    assert line.startswith("error: interrupted by SIGINT; resume with: cadenza train "), line
    assert line.endswith(" --resume"), line  # without it train refuses the dir its first run made
