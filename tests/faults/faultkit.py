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
import threading
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
    stop_s: float | None = None  # seconds from the signal to the command's exit (None: not killed)


class Running:
    """`cadenza ARGS` in its own process group (a terminal's foreground job), its stderr read by a thread so
    that the moment it exits is seen at once, whatever it writes."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.name = args[0]
        self.proc = subprocess.Popen([*CLI, *args], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self._err: list[str] = []
        self._reader = threading.Thread(target=lambda: self._err.append(self.proc.stderr.read()), daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: int) -> float:
        """Send `sig` to every process of the group, as Ctrl-C or kill -9 of the job does; returns when."""
        sent = time.monotonic()
        os.killpg(self.proc.pid, sig)
        return sent

    def wait(self, timeout_s: float) -> float:
        """The time.monotonic() at which the command exited (polled every 5 ms); killed if it outlives
        `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError(f"cadenza {self.name} still running after {timeout_s} s: "
                                     f"{self.stderr()[-3000:]!r}")
            time.sleep(0.005)
        return time.monotonic()

    def reap_group(self) -> int:
        """How many processes of the group outlived the command by a few seconds (they are then killed)."""
        survivors = _group_survivors(self.proc.pid)
        if survivors:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return survivors

    def stderr(self) -> str:
        self._reader.join(10)  # the pipe closes once the last process holding it has ended
        return "".join(self._err)


def run_and_kill(args: list[str], progress: Callable[[], int], total: int, seed: int, *, env: dict[str, str],
                 max_delay_s: float = 0.5, timeout_s: float = 240, sig: int = signal.SIGKILL) -> Kill:
    """Start `cadenza ARGS` in its own process group, wait until `progress()` reaches a seeded count in
    [0, total - 2], then a seeded delay, then send `sig` to the whole group (Beam's worker processes
    included), as kill -9 does with SIGKILL or a terminal's Ctrl-C does with SIGINT."""
    rng = random.Random(seed)
    wait_for, delay = rng.randint(0, max(0, total - 2)), rng.uniform(0.0, max_delay_s)
    run = Running(args, env)
    deadline = time.time() + timeout_s
    while time.time() < deadline and run.alive() and progress() < wait_for:
        time.sleep(0.02)
    time.sleep(delay)
    killed = run.alive()
    sent = run.signal_group(sig) if killed else None
    ended = run.wait(timeout_s)
    survivors = run.reap_group()
    err = run.stderr()
    if not killed and run.proc.returncode != 0:
        raise AssertionError(f"cadenza {args[0]} failed before the kill: {err[-3000:]!r}")
    stop_s = round(ended - sent, 3) if sent is not None else None
    return Kill(seed, wait_for, round(delay, 3), progress(), killed, run.proc.returncode, err, survivors, stop_s)


def ended_first(kill: Kill, finished: Path) -> bool:
    """Whether the seeded point came too late: the command had ended, or had written its last output
    (`finished`) and was on its way out, before the signal; such a run shows nothing about stopping or
    resuming."""
    return not kill.killed or finished.exists()


DELAY_SHARES = (1.0, 0.25, 0.05)  # of a test's longest seeded delay, tried in turn while runs end first


def until_mid_run(attempt: Callable[[int, float], tuple[Kill, Path, bool]]) -> tuple[Kill, Path]:
    """`attempt(n, share)` runs the command into a fresh output dir with its seeded delay scaled by `share`
    and returns the Kill, that dir, and whether the signal came too late; returns the first Kill (and its
    dir) that landed mid-run. A seed whose every try lands after the end fails: a run that finished on its
    own proves nothing."""
    tries = []
    for n, share in enumerate(DELAY_SHARES):
        kill, out, too_late = attempt(n, share)
        if not too_late:
            return kill, out
        tries.append(kill)
    raise AssertionError(f"every seeded point came after the run had finished: {tries}")


def _group_survivors(pgid: int, grace_s: float = 5.0) -> int:
    """How many processes of group `pgid` still run after `grace_s` seconds (a zombie has ended: when
    init reaps it is no business of the command's)."""
    import psutil

    deadline = time.time() + grace_s
    while True:
        alive = [p for p in psutil.process_iter(["pid", "status"])
                 if p.info["status"] != psutil.STATUS_ZOMBIE and _pgid(p.info["pid"]) == pgid]
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
