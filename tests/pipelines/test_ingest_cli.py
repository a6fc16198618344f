"""`cadenza ingest`: options, Beam pass-through, errors; and a real kill -9 followed by a resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest_testkit import media_dir, read_shard, write_csv  # noqa: F401 (media_dir is a fixture)
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.mediaserver import MediaServer
from cadenza.pipelines.ingest import IngestConfig, run_ingest

REPO = Path(__file__).resolve().parents[2]


def test_cli_ingest_passes_beam_options_through(media_dir, tmp_path):  # noqa: F811
    csv = write_csv(tmp_path / "mc.csv", [("goodAAAAAAA", 0, 10), ("f404xxxxxxx", 0, 10)])
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404"}) as srv:
        res = CliRunner().invoke(app, [
            "ingest", "--csv", str(csv), "--out", str(tmp_path / "out"), "--source-url-template",
            srv.url_template("webm"), "--shard-size", "1", "--sample-rate", "24000", "--ontology", "none",
            "--no-progress", "--json", "--direct_running_mode", "in_memory", "--direct_num_workers=1",
        ])
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.output[res.output.index("{"):])
    assert manifest["clips_written"] == 1 and manifest["failures_by_category"] == {"not_found": 1}
    assert manifest["config"]["sample_rate"] == 24000 and manifest["config"]["shard_size"] == 1
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"] == manifest["shards"]


def test_cli_ingest_rejects_bad_options(tmp_path):
    csv = write_csv(tmp_path / "mc.csv", [("goodAAAAAAA", 0, 10)])
    res = CliRunner().invoke(app, ["ingest", "--csv", str(csv), "--out", str(tmp_path / "o"),
                                   "--source-url-template", "http://127.0.0.1:1/static.m4a"])
    assert res.exit_code == 2 and "{ytid}" in res.output
    res = CliRunner().invoke(app, ["ingest", "--help"])
    assert res.exit_code == 0 and "--retry-failed" in res.output and "DataflowRunner" in res.output


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(media_dir, tmp_path, monkeypatch):  # noqa: F811
    """SIGKILL a real `cadenza ingest` process part way, resume it, compare with a clean run byte for byte."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    rows = [(y, s, s + 4) for s in (0, 3, 6) for y in ("goodAAAAAAA", "goodBBBBBBB", "goodCCCCCCC")]
    csv = write_csv(tmp_path / "mc.csv", rows)
    with MediaServer(media_dir, latency_s=0.1) as srv:
        common = ["--csv", str(csv), "--source-url-template", srv.url_template("m4a"), "--shard-size", "1",
                  "--ontology", "none", "--max-concurrent-fetches", "1", "--no-progress"]
        out = tmp_path / "killed"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-c", "from cadenza.cli import main; main()", "ingest", *common, "--out", str(out)]
        # the default runner setup: DirectRunner, multi-processing workers (killed with their parent's group)
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if len(list((out / "shards").glob("*.stats.json"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"ingest ended before it could be killed: {proc.stderr.read()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done_at_kill = len(list((out / "shards").glob("*.stats.json")))
        assert 2 <= done_at_kill < len(rows)

        resumed = subprocess.run([*cmd, "--json", "--direct_running_mode=in_memory"], env=env, capture_output=True,
                                 text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        manifest = json.loads(resumed.stdout[resumed.stdout.index("{"):])
        assert manifest["run"]["shards_written"] == len(rows) - done_at_kill

        clean = tmp_path / "clean"
        run_ingest(IngestConfig(csv=str(csv), out=str(clean), source_url_template=srv.url_template("m4a"),
                                shard_size=1, max_concurrent_fetches=1, progress=False),
                   ["--direct_running_mode=in_memory"])
    assert manifest["clips_written"] == len(rows)
    names = sorted(p.name for p in (clean / "shards").iterdir())
    assert names == sorted(p.name for p in (out / "shards").iterdir())  # no leftovers of the killed writes
    for name in names:
        assert (out / "shards" / name).read_bytes() == (clean / "shards" / name).read_bytes(), name
    assert len({k for t in (clean / "shards").glob("*.tar") for k in read_shard(t)}) == len(rows)
