"""`cadenza ingest` tells the truth: its exit status, its stdout (one JSON document with --json, even with
the progress bar on), a quiet terminal (Beam's log goes to OUT/ingest.log), and a hint when a rerun has
nothing to do. Real processes against the loopback media server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cadenza.testing.mediaserver import MediaServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from faultkit import cli_env, run_cli  # noqa: E402 (faultkit also puts tests/pipelines on sys.path)
from ingest_testkit import media_dir, write_csv  # noqa: E402, F401 (media_dir is a fixture)

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def _args(csv: Path, out: Path, srv: MediaServer, *extra: str, shard_size: int = 1) -> list[str]:
    return ["ingest", "--csv", str(csv), "--out", str(out), "--source-url-template", srv.url_template("m4a"),
            "--shard-size", str(shard_size), "--ontology", "none", "--max-concurrent-fetches", "1", *extra]


def test_json_is_one_document_with_progress_on_and_beam_quiet(media_dir, tmp_path):  # noqa: F811
    csv = write_csv(tmp_path / "mc.csv", [("goodAAAAAAA", 0, 4), ("goodBBBBBBB", 0, 4), ("f404xxxxxxx", 0, 4)])
    out = tmp_path / "out"
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404"}) as srv:
        res = run_cli([*_args(csv, out, srv, "--json"), "--direct_num_workers=2"], env=cli_env(**EPOCH))
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads(res.stdout)  # the whole of stdout
    assert manifest["clips_written"] == 2 and manifest["failures_by_category"] == {"not_found": 1}
    assert "apache_beam" not in res.stderr and "INFO" not in res.stderr, res.stderr[-3000:]
    log = (out / "ingest.log").read_text()
    assert "apache_beam" in log  # Beam's log is kept, just not on the terminal


def test_nothing_fetched_exits_5_and_writes_no_tar(media_dir, tmp_path):  # noqa: F811
    csv = write_csv(tmp_path / "mc.csv", [("f404xxxxxxx", 0, 4), ("f404xxxxxxx", 5, 9)])
    out = tmp_path / "out"
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404"}) as srv:
        first = run_cli([*_args(csv, out, srv), "--direct_running_mode=in_memory"], env=cli_env(**EPOCH))
        assert first.returncode == 5, first.stderr[-3000:]
        assert "0 of 2 valid rows written" in first.stderr and "not_found 2" in first.stderr
        assert "--retry-failed" in first.stderr and "Traceback" not in first.stderr
        assert not list((out / "shards").glob("*.tar"))  # nothing that a reader would take for data
        assert len(list((out / "stats").glob("*.stats.json"))) == 2
        assert len((out / "failures" / "audio-000000.jsonl").read_text().splitlines()) == 1
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["shards"] == [] and len(manifest["shards_without_samples"]) == 2
        # the failed rows are records, not pending: a rerun says so and how to fetch them again
        again = run_cli([*_args(csv, out, srv), "--direct_running_mode=in_memory"], env=cli_env(**EPOCH))
        assert again.returncode == 5 and "--retry-failed" in again.stderr
        before = sum(srv.requests.values())
        retried = run_cli([*_args(csv, out, srv), "--direct_running_mode=in_memory", "--retry-failed"],
                          env=cli_env(**EPOCH))
        assert retried.returncode == 5 and sum(srv.requests.values()) > before  # asked for them again


def test_rerun_with_nothing_to_do_hints_at_retry_failed(media_dir, tmp_path):  # noqa: F811
    # one shard: two clips written, one failed, so the shard is complete and a rerun skips it
    csv = write_csv(tmp_path / "mc.csv", [("goodAAAAAAA", 0, 4), ("goodBBBBBBB", 0, 4), ("f404xxxxxxx", 0, 4)])
    out = tmp_path / "out"
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404"}) as srv:
        args = [*_args(csv, out, srv, shard_size=3), "--direct_running_mode=in_memory"]
        first = run_cli(args, env=cli_env(**EPOCH))
        assert first.returncode == 0, first.stderr[-3000:]
        assert first.stdout.strip().splitlines()[-1] == f"output: {out}"
        requests = sum(srv.requests.values())
        again = run_cli(args, env=cli_env(**EPOCH))
        assert sum(srv.requests.values()) == requests
    assert again.returncode == 0
    assert "nothing to do" in again.stderr and "--retry-failed" in again.stderr and "not_found 1" in again.stderr


@pytest.mark.parametrize(("rate", "status"), [("0.2", 5), ("0.5", 0)])
def test_max_failure_rate_decides_the_status(media_dir, tmp_path, rate, status):  # noqa: F811
    csv = write_csv(tmp_path / "mc.csv", [("goodAAAAAAA", 0, 4), ("f404xxxxxxx", 0, 4)])
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404"}) as srv:
        res = run_cli([*_args(csv, tmp_path / "out", srv, "--max-failure-rate", rate),
                       "--direct_running_mode=in_memory"], env=cli_env(**EPOCH))
    assert res.returncode == status, res.stderr[-3000:]
