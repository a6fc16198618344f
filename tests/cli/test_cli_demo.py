"""`cadenza demo`: registered, documented, builds the dataset and shows its plan; refuses clearly when the
chain's stages are missing."""

from __future__ import annotations

from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.musiccaps.csvload import load_musiccaps

runner = CliRunner()


def test_demo_help_explains_the_command():
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("--out", "--csv", "--codec-steps", "EnCodec", "127.0.0.1", "Safe to run twice"):
        assert words in text


def test_demo_plan_builds_the_dataset_and_lists_every_stage(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--clips", "1", "--plan"])
    assert result.exit_code == 0, result.output
    for stage in ("dataset", "fetch_metadata", "ingest", "tokenize", "audit", "train", "sample", "evaluate",
                  "per audit group", "codec_train", "codec_eval", "the trained codec"):
        assert stage in result.output
    csv = tmp_path / "demo-data" / "musiccaps-demo.csv"
    assert len(load_musiccaps(csv).clips) == 2  # one synthesised clip + the planted missing-media row


def test_demo_plan_with_a_real_csv_skips_synthesis(tmp_path, musiccaps_csv):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--csv", str(musiccaps_csv), "--plan"])
    assert result.exit_code == 0, result.output
    assert "pretrained EnCodec" in result.output and "YouTube" in result.output
    assert not (tmp_path / "demo-data").exists()
