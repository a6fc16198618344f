"""`cadenza ingest`: options, Beam pass-through, errors. (kill -9 and resume: tests/faults/test_kill_resume.py)"""

from __future__ import annotations

import json

from ingest_testkit import media_dir, write_csv  # noqa: F401 (media_dir is a fixture)
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.testing.mediaserver import MediaServer


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
