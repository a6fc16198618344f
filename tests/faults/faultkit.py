"""Shared pieces of the fault tests: the real `cadenza` CLI in a subprocess, killed at a seeded point.

Imported by tests/faults/test_*.py (pytest puts this directory on sys.path). The ingest test helpers
live in tests/pipelines/ingest_testkit.py; that directory is put on sys.path here so they are reused.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pipelines"))

CLI = [sys.executable, "-c", "from cadenza.cli import main; main()"]
SEEDS = (11, 22, 33)


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


@dataclass
class Kill:
    """Where a seeded signal landed: the progress count it waited for, the extra delay, and what it found."""

    seed: int
    wait_for: int
    delay_s: float
    progress_at_kill: int
    killed: bool  # False: the process had already ended on its own
    returncode: int | None = None
    stderr: str = ""
    survivors: int = 0  # processes of its group still alive a few seconds after it ended


def run_and_kill(args: list[str], progress: Callable[[], int], total: int, seed: int, *, env: dict[str, str],
                 max_delay_s: float = 0.5, timeout_s: float = 240, sig: int = signal.SIGKILL) -> Kill:
    """Start `cadenza ARGS` in its own process group, wait until `progress()` reaches a seeded count in
    [0, total - 2], then a seeded delay, then send `sig` to the whole group (Beam's worker processes
    included), as kill -9 does with SIGKILL or a terminal's Ctrl-C does with SIGINT."""
    rng = random.Random(seed)
    wait_for, delay = rng.randint(0, max(0, total - 2)), rng.uniform(0.0, max_delay_s)
    proc = subprocess.Popen([*CLI, *args], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None and progress() < wait_for:
        time.sleep(0.02)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"cadenza {args[0]} still running {timeout_s} s after signal {sig}: {err[-3000:]!r}") \
            from None
    if not killed and proc.returncode != 0:
        raise AssertionError(f"cadenza {args[0]} failed before the kill: {err[-3000:]!r}")
    survivors = _group_survivors(proc.pid)
    if survivors:
        os.killpg(proc.pid, signal.SIGKILL)
    return Kill(seed, wait_for, round(delay, 3), progress(), killed, proc.returncode, err, survivors)


def _group_survivors(pgid: int, grace_s: float = 5.0) -> int:
    """How many processes of group `pgid` are still alive after `grace_s` seconds."""
    import psutil

    deadline = time.time() + grace_s
    while True:
        alive = [p for p in psutil.process_iter(["pid"]) if _pgid(p.info["pid"]) == pgid]
        if not alive or time.time() > deadline:
            return len(alive)
        time.sleep(0.1)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def run_cli(args: list[str], *, env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout_s)


def count_complete(shard_dir: Path) -> int:
    stats_dir = shard_dir.parent / "stats"  # the markers live beside the shard dir
    return len(list(stats_dir.glob("*.stats.json"))) if stats_dir.is_dir() else 0


def token_samples(tokens_dir: Path) -> dict[str, dict[str, object]]:
    """Every sample of a tokens dir by key: arrays decoded (allow_pickle=False), json parsed."""
    from cadenza.formats import shards

    out: dict[str, dict[str, object]] = {}
    for tar in shards.list_shards(str(tokens_dir / "shards")):
        for s in shards.iter_tar_samples(tar):
            key = s.pop("__key__")
            s.pop("__url__")
            assert key not in out, f"{key} in two shards"
            out[key] = {ext: (np.load(io.BytesIO(v), allow_pickle=False) if ext.endswith(".npy")
                              else json.loads(v) if ext == "json" else v) for ext, v in s.items()}
    return out
