from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from cadenza.cli import app

CLI = [sys.executable, "-c", "from cadenza.cli import main; main()"]


def test_help_lists_stages():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    assert "musiccaps" in res.output


def test_unreadable_input_is_one_line_error(tmp_path):
    res = subprocess.run([*CLI, "musiccaps", "validate", str(tmp_path / "missing.csv")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: the MusicCaps CSV: no such file: {tmp_path / 'missing.csv'}"]


def test_validate_real_csv(musiccaps_csv, ontology_json):
    res = CliRunner().invoke(app, ["musiccaps", "validate", str(musiccaps_csv), "--ontology", str(ontology_json)])
    assert res.exit_code == 0, res.output
    assert "5521" in res.output
