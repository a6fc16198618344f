"""A slice of benchmarks/bench_musiccaps_full.py: real CSV rows through the chain, every row accounted for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CSV = REPO.parent / "shared" / "data" / "musiccaps" / "musiccaps-public.csv"
ONTOLOGY = REPO.parent / "shared" / "data" / "audioset" / "ontology.json"
STAGES = ("media", "ingest", "codec_train", "tokenize", "audit", "train", "evaluate")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CSV.is_file() and ONTOLOGY.is_file()), reason="the real MusicCaps CSV and ontology "
                       "are not in ../shared/data"),
]


def test_a_slice_of_musiccaps_runs_the_whole_chain_with_every_row_accounted_for(tmp_path):
    # 16 rows with a fault every 4th ytid: one each of 404, 410, 429-then-200 and a truncated body
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_musiccaps_full.py"), "--rows", "16",
           "--fault-share", "0.25", "--latency", "0.05", "0.3", "--codec-steps", "4", "--clusters", "16",
           "--train-preset", "tiny", "--train-steps", "2", "--eval-samples", "1", "--work-dir", str(tmp_path), "--json"]
    res = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    report = json.loads(res.stdout)  # one JSON document, the progress went to stderr
    assert "stage ingest" in res.stderr

    assert report["server"]["faults_planted"] == {"404": 1, "410": 1, "429-then-200": 1, "truncated": 1}
    acc = report["accounting"]
    assert acc["rows_in"] == 16
    assert (acc["lost"], acc["duplicated"], acc["unknown"]) == (0, 0, 0)
    assert acc["in_shards"] + acc["failures"] + acc["pending"] == acc["accounted"] == 16
    # 404 and 410 end as failure records; the truncated body (session side) stays pending; the 429 lands on a retry
    assert acc["failures_by_category"] == {"gone": 1, "not_found": 1}
    assert acc["pending_by_category"] == {"truncated": 1}
    assert acc["in_shards"] == 13
    tokens = report["token_accounting"]
    assert tokens["clips_in"] == 13 and tokens["in_shards"] + tokens["failures"] == 13
    assert (tokens["lost"], tokens["duplicated"], tokens["unknown"]) == (0, 0, 0)

    # every stage ran and left its output
    assert list(report["stages"]) == list(STAGES)
    for name, stage in report["stages"].items():
        assert stage["ok"] and stage["wall_s"] > 0 and stage["cpu_s"] > 0 and stage["peak_rss_mb"] > 0, name
    results = {name: s["result"] for name, s in report["stages"].items()}
    assert sum(results["media"][f] for f in ("m4a", "webm", "mp4")) == 16
    assert results["ingest"]["clips_written"] == 13
    assert results["tokenize"]["clips_written"] == tokens["in_shards"] > 0
    assert Path(results["codec_train"]["record"]).is_file()
    for name in ("audit", "evaluate"):
        assert Path(results[name]["metrics"]).is_file() and Path(results[name]["report_html"]).is_file(), name
    assert Path(results["train"]["metrics_log"]).is_file()
    assert report["disk"]["audio_shard_bytes_per_hour"] > 0 and report["disk"]["token_shard_bytes_per_hour"] > 0
    assert report["stages"]["ingest"]["audio_s"] == pytest.approx(130, abs=1)


def test_a_bad_option_is_one_line_and_exit_2(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_musiccaps_full.py"), "--csv",
                          str(tmp_path / "nope.csv")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [f"bench_musiccaps_full: --csv {tmp_path / 'nope.csv'}: no such file; "
                                               "point it at musiccaps-public.csv"]
