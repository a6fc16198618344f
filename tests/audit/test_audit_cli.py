"""`cadenza audit` end to end through the CLI."""

from __future__ import annotations

import json

from audit_synth import write_dataset
from typer.testing import CliRunner

from cadenza.audit.weights import load_weights
from cadenza.cli import app

runner = CliRunner()


def test_cli_audit_writes_every_output(tmp_path):
    data = write_dataset(tmp_path, planted=True, n=400)
    out = tmp_path / "audit"
    result = runner.invoke(
        app,
        [
            "audit",
            "--csv",
            str(data["csv"]),
            "--out",
            str(out),
            "--available",
            str(data["available"]),
            "--taxonomy",
            str(data["taxonomy"]),
            "--group-by",
            "region",
            "--weights-out",
            str(tmp_path / "w.parquet"),
            "--cap",
            "3",
            "--no-plots",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "audited 400 clips" in result.output and "alerts" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["cap"] == 3.0 and metrics["source"]["survival_source"]["kind"] == "available"
    assert metrics["survival"]["counts"]["pending"] == 0
    assert len((out / "assignments.jsonl").read_text().splitlines()) == 400
    weights = load_weights(tmp_path / "w.parquet")
    assert len(weights) == 400 and max(weights.values()) <= 3.0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert "the 5 that matter most" in result.output or "that matter most:" in result.output
    assert "1. " in result.output and "(region evidence: both)" in result.output


def test_cli_region_rule_and_min_group_size(tmp_path):
    data = write_dataset(tmp_path, planted=True, n=300)
    out = tmp_path / "audit"
    args = ["audit", "--csv", str(data["csv"]), "--out", str(out), "--taxonomy", str(data["taxonomy"]), "--no-plots"]
    result = runner.invoke(app, [*args, "--region-evidence", "explicit", "--min-group-size", "400"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["region_evidence"] == "explicit" and metrics["region_rule"]["rule"] == "explicit"
    assert metrics["config"]["min_group"] == 400
    assert metrics["description"]["tests"] == []  # no group of 300 clips reaches 400: nothing is tested
    assert not any("p" in e for p in metrics["annotators"]["profiles"] for e in p["descriptors"].values())
    assert [f for f in metrics["findings"] if f["kind"] == "annotator_habit"] == []
    html = (out / "report.html").read_text()
    assert "--region-evidence explicit" in html and "minimum group size for any test:\n400" in html
    bad = runner.invoke(app, [*args, "--region-evidence", "vibes"])
    assert bad.exit_code == 2 and "--region-evidence" in bad.output


def test_cli_refuses_two_survival_sources_and_reports_missing_files(tmp_path):
    data = write_dataset(tmp_path, planted=False, n=50)
    both = runner.invoke(
        app,
        [
            "audit",
            "--csv",
            str(data["csv"]),
            "--out",
            str(tmp_path / "o"),
            "--ingest",
            str(tmp_path),
            "--available",
            str(data["available"]),
        ],
    )
    assert both.exit_code == 2 and "either --ingest or --available" in both.output
    missing = runner.invoke(app, ["audit", "--csv", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_cli_help_explains():
    result = runner.invoke(app, ["audit", "--help"])
    assert result.exit_code == 0
    for word in ("--ingest", "--available", "--group-by", "--weights-out", "Mantel-Haenszel"):
        assert word in result.output


def test_cli_audit_reads_an_ingest_dir(tmp_path):
    from audit_synth import generate, write_csv, write_taxonomy

    from cadenza.formats.failures import FailureRecord, failures_jsonl
    from cadenza.formats.shards import shard_name, write_shard
    from cadenza.formats.storage import write_bytes_atomic, write_json_atomic
    from cadenza.musiccaps.schema import clip_key

    rows, _ = generate(120, seed=3)
    keys = [clip_key(r["ytid"], 30, 40) for r in rows]
    ingest = tmp_path / "ingest"
    # 80 landed; 10 left pending by the session (a bot check) in the shard's stats; 20 removed from YouTube;
    # 5 failure records of a session-side kind (older ingests wrote those) and 5 of our own errors
    pending = {k: "bot_check" for k in keys[80:90]}
    write_shard(str(ingest / "shards" / shard_name("audio", 0)), [{"__key__": k, "txt": "x"} for k in keys[:80]],
                {"pending": pending})
    fails = [FailureRecord(k, "fetch", "removed", "video unavailable", ytid=k[:11]) for k in keys[90:110]]
    fails += [FailureRecord(k, "fetch", "rate_limited", "HTTP Error 429", ytid=k[:11]) for k in keys[110:115]]
    fails += [FailureRecord(k, "process", "internal_error", "bug", ytid=k[:11]) for k in keys[115:]]
    write_bytes_atomic(str(ingest / "failures" / "fetch.jsonl"), failures_jsonl(fails))
    session = {"vantage": "DE", "yt_dlp": "2026.10.26", "js_runtime": "deno (/x/deno)", "pot_provider": None}
    write_json_atomic(str(ingest / "manifest.json"), {"kind": "audio", "clips_written": 80, "session": session})
    out = tmp_path / "audit"
    result = runner.invoke(
        app,
        [
            "audit",
            "--csv",
            str(write_csv(tmp_path / "s.csv", rows)),
            "--out",
            str(out),
            "--ingest",
            str(ingest),
            "--taxonomy",
            str(write_taxonomy(tmp_path / "t.yaml")),
            "--no-plots",
        ],
    )
    assert result.exit_code == 0, result.output
    survival = json.loads((out / "metrics.json").read_text())["survival"]
    # only the clip-side failures are lost; the session's are pending, our own errors unresolved
    assert survival["counts"] == {"survived": 80, "lost": 20, "pending": 15, "unresolved": 5}
    assert survival["lost_by_category"] == {"removed": 20} and survival["manifest"]["clips_written"] == 80
    assert survival["pending_by_category"] == {"bot_check": 10, "rate_limited": 5}
    assert survival["unresolved_by_category"] == {"internal_error": 5}
    assert survival["overall_rate"] == 80 / 100 and survival["session"]["vantage"] == "DE"
    html = (out / "report.html").read_text()
    assert "vantage DE" in html and "deno (/x/deno)" in html and "Only failures that blame the clip" in html
