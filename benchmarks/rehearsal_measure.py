"""What the rehearsal measures around each stage, and how it accounts for every row.

A stage runs in a fresh child process, so its peak memory is its own: `run_measured` samples the RSS
of the child's whole process tree (Beam's worker processes included) a few times a second, and takes
the child's CPU time from the kernel when it ends (wait4: the child plus every descendant it reaped),
or the per-process sums sampled on the way when those are larger (descendants nobody reaped).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_EVERY_S = 0.2


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float  # the process tree's summed RSS, at its sampled peak
    max_process_rss_mb: float  # the largest single process (kernel's maxrss over the child and reaped ones)
    returncode: int


@dataclass
class _TreeSampler:
    pid: int
    peak_rss: int = 0
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            rss = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu_by_pid[p.pid] = t.user + t.system
                except psutil.Error:
                    continue  # ended between the listing and the reading
            self.peak_rss = max(self.peak_rss, rss)
            self.stop.wait(SAMPLE_EVERY_S)


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run `cmd` (its stdout onto our stderr: our stdout is for results) and measure it."""
    t0 = time.perf_counter()
    # its own process group, so that an interrupted rehearsal takes the stage's worker processes down too
    proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr.fileno(), start_new_session=True)
    sampler = _TreeSampler(proc.pid)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    sampler.stop.set()
    thread.join()
    cpu = max(usage.ru_utime + usage.ru_stime, sum(sampler.cpu_by_pid.values()))
    return Measured(round(wall, 2), round(cpu, 2), round(sampler.peak_rss / 2**20, 1),
                    round(usage.ru_maxrss / 1024, 1), proc.returncode)  # Linux: maxrss in KiB


# ---------------------------------------------------------------- accounting


def expected_keys(csv_rows: list[dict[str, str]]) -> list[str]:
    """The clip key of every input row (a row whose times do not parse is keyed by its row number)."""
    from cadenza.musiccaps.schema import clip_key

    keys = []
    for i, r in enumerate(csv_rows, start=1):
        try:
            keys.append(clip_key(r["ytid"], float(r["start_s"]), float(r["end_s"])))
        except (KeyError, ValueError):
            keys.append(f"row{i}")
    return keys


def _tar_keys(shard_dir: Path) -> list[str]:
    from cadenza.formats import shards

    return [s["__key__"] for tar in shards.list_shards(str(shard_dir)) for s in shards.iter_tar_samples(tar)]


def account(expected: list[str], out: Path) -> dict[str, Any]:
    """Every input row by clip key across the audio tars, the failure records and the pending records."""
    from cadenza.formats.failures import read_failures
    from cadenza.formats.storage import read_json


    in_shards = _tar_keys(out / "shards")
    failures = read_failures(str(out / "failures"))
    failed = [f.key or f"row{f.row}" for f in failures]
    pending = [k for p in sorted((out / "stats").glob("*.stats.json"))
               for k in read_json(str(p)).get("pending", {})]
    seen = Counter(in_shards + failed + pending)
    want = set(expected)
    return {
        "rows_in": len(expected), "in_shards": len(in_shards), "failures": len(failed), "pending": len(pending),
        "accounted": len(want & set(seen)),
        "lost": len(want - set(seen)),
        "duplicated": sum(1 for k, n in seen.items() if n > 1),
        "unknown": len(set(seen) - want),
        "failures_by_category": dict(sorted(Counter(f.category for f in failures).items())),
        "pending_by_category": dict(sorted(Counter(
            c for p in (out / "stats").glob("*.stats.json")
            for c in read_json(str(p)).get("pending", {}).values()).items())),
    }


def account_tokens(audio_out: Path, tokens_out: Path) -> dict[str, Any]:
    """Every clip of the audio shards in exactly one token shard or one tokenize failure record."""
    from cadenza.formats.failures import read_failures

    audio = set(_tar_keys(audio_out / "shards"))
    tokens = _tar_keys(tokens_out / "shards")
    failed = [f.key for f in read_failures(str(tokens_out / "failures"))] \
        if (tokens_out / "failures").is_dir() else []
    seen = Counter(tokens + failed)
    return {"clips_in": len(audio), "in_shards": len(tokens), "failures": len(failed),
            "lost": len(audio - set(seen)), "duplicated": sum(1 for n in seen.values() if n > 1),
            "unknown": len(set(seen) - audio)}


def tar_bytes(shard_dir: Path) -> int:
    return sum(p.stat().st_size for p in shard_dir.glob("*.tar"))


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def audio_seconds(stats_dir: Path) -> float:
    return round(sum(json.loads(p.read_text()).get("audio_seconds", 0.0) for p in stats_dir.glob("*.stats.json")), 3)
