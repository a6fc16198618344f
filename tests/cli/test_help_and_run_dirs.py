"""Help that a terminal shows whole, --version, and `train` into an existing run: --resume, --force or refuse."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import typer

from cadenza.cli import PIPELINE_ORDER, app, main

REPO = Path(__file__).resolve().parents[2]


def _help_in_a_pty(args: list[str], columns: int = 80) -> str:
    """`cadenza ARGS --help` run on a pseudo-terminal `columns` wide, as a user sees it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", "from cadenza.cli import main; main()", *args, "--help"],
                            stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is done
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0
    return b"".join(chunks).decode()


def _options(command: list[str]) -> list[tuple[str, str | None]]:
    """(option name, help text) of every option of a command, from the click command typer builds."""
    cmd = typer.main.get_command(app)
    for name in command:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return [(opt, p.help) for p in cmd.params if not getattr(p, "hidden", False) for opt in p.opts
            if opt.startswith("--")]


@pytest.mark.parametrize("command", [["ingest"], ["tokenize"], ["train"], ["sample"], ["evaluate"], ["audit"]])
def test_help_at_80_columns_shows_every_option_whole_and_explained(command):
    text = _help_in_a_pty(command)
    assert max(len(line.rstrip("\r")) for line in text.splitlines()) <= 80
    words = set(text.replace(",", " ").replace("/", " ").split())
    for option, help_text in _options(command):
        assert option in words, f"{option} cut or missing in `cadenza {' '.join(command)} --help`"
        assert help_text, f"{option} has no help text"
    assert "<bool>" not in text and "…" not in text


def test_commands_are_listed_in_pipeline_order_and_version_prints(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = [ln.split()[0] for ln in capsys.readouterr().out.split("Commands:")[1].splitlines() if ln.strip()]
    assert listed == [c for c in PIPELINE_ORDER if c in listed]
    assert listed[:4] == ["musiccaps", "ingest", "codec", "tokenize"]
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("cadenza 0.")


def test_train_into_an_existing_run_needs_resume_or_force(tmp_path, capsys):
    from cadenza.training.synthetic import make_synthetic_tokens

    make_synthetic_tokens(tmp_path / "tok", clips=8, shards=2)
    (tmp_path / "cfg.json").write_text(json.dumps({"model": "tiny", "batch_size": 2, "crop_seconds": 1.0,
                                                    "ckpt_every": 1, "log_every": 1, "progress": False}))
    run = tmp_path / "run"
    base = ["train", "--shards", str(tmp_path / "tok"), "--config", str(tmp_path / "cfg.json"), "--out", str(run)]
    with pytest.raises(SystemExit) as done:
        main([*base, "--steps", "3"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"checkpoint: {run / 'checkpoints' / 'step-00000003'}"

    with pytest.raises(SystemExit) as done:
        main([*base, "--steps", "2"])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "checkpoint at step 3" in err and "--resume" in err and "--force" in err
    assert (run / "checkpoints" / "step-00000003").is_dir()  # refused: the run is untouched

    with pytest.raises(SystemExit) as done:
        main([*base, "--steps", "2", "--force"])
    assert done.value.code == 0
    capsys.readouterr()
    # started over: no checkpoint of the old run is left beside the new one, and the log starts again
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-00000001", "step-00000002"]
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
