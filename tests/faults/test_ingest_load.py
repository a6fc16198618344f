"""A small run of benchmarks/bench_ingest_load.py: 100 rows, latency and a 5% failure mix, every row accounted for."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from faultkit import REPO, cli_env

pytestmark = pytest.mark.slow


def test_every_row_of_a_loaded_ingest_is_accounted_for():
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_ingest_load.py"), "--rows", "100",
                          "--baseline-rows", "0", "--latency", "0.01", "0.05", "--json"],
                         env=cli_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    run = json.loads(res.stdout.strip().splitlines()[-1])["load"]
    assert run["rows_in"] == 100
    assert run["rows_lost"] == run["rows_duplicated"] == run["rows_unknown"] == 0
    # rows 0, 20, 40, 60, 80 misbehave: 404, 500, 429-then-200 (lands after a retry), truncated, 404
    assert run["faults_injected"] == {"404": 2, "500": 1, "429-then-200": 1, "truncated": 1}
    # the clip-side faults are failure records; the session-side ones (server, network) stay pending
    assert run["failures_by_category"] == {"not_found": 2}
    assert run["pending_by_category"] == {"server_error": 1, "truncated": 1}
    assert run["clips_written"] == 96
