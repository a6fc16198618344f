"""The signal watcher in a process of its own: a thread's traceback is kept before a stop signal and dropped
after it, and a second signal ends a StopRequest's process at once."""

from __future__ import annotations

import json
import subprocess
import sys

# run in a fresh interpreter: the watcher needs the main thread, which a test runner's worker may not give
SCENARIO = r"""
import json, os, signal, threading, time
from cadenza.cli.interrupt import handling_signals

seen, signals = [], []
threading.excepthook = lambda args: seen.append(str(args.exc_value))

def raise_in_thread(name):
    def fail():
        raise RuntimeError(f"{name} died")
    t = threading.Thread(target=fail, name=name)
    t.start()
    t.join()

with handling_signals(signals.append):
    raise_in_thread("before")
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while not signals and time.monotonic() < deadline:
        time.sleep(0.01)
    raise_in_thread("run_worker")
raise_in_thread("after")
print(json.dumps({"signals": signals, "seen": seen}))
"""


def test_thread_exceptions_are_dropped_once_a_stop_signal_arrived():
    """Beam starts SDK workers through /bin/sh, which unblocks signals: a group SIGTERM kills them first and
    the runner's thread raises. That traceback must not reach the user's terminal before the one line."""
    done = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["signals"] == [15]
    assert result["seen"] == ["before died", "after died"]


STOP_REQUEST = r"""
import os, signal, time
from cadenza.cli.interrupt import StopRequest

with StopRequest() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + 10
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(0.01)
    print("requested", stop.signum, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)  # a loop that never reaches its safe point
print("slept through the second signal", flush=True)
"""


def test_a_second_signal_stops_a_stop_request_at_once():
    """The first SIGINT only asks the loop to stop; the second ends the process with the one line."""
    done = subprocess.run([sys.executable, "-c", STOP_REQUEST], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["requested 2"], (done.stdout, done.stderr[-2000:])
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr.startswith("error: interrupted by SIGINT; resume with: cadenza"), done.stderr[-2000:]
    assert len(done.stderr.splitlines()) == 1, done.stderr[-2000:]


STAGE = r"""
import logging, os, signal, sys, time
import typer
from cadenza.cli.interrupt import resumable_shard_stage, signals_to_watcher

out, what = sys.argv[1], sys.argv[2]
sys.argv = ["cadenza", "ingest", "--out", out]
with signals_to_watcher():  # as main() does, before any thread starts
    from cadenza.formats.shards import shard_name, write_shard
    from cadenza.formats.storage import write_bytes_atomic

    write_shard(f"{out}/shards/{shard_name('audio', 0)}", [{"__key__": "a", "txt": "x"}], {"count": 1})
    write_bytes_atomic(f"{out}/shards/{shard_name('audio', 1)}", b"no stats marker: not complete")
    try:
        with resumable_shard_stage(out, "ingest", "audio", False, refused=LookupError, refused_status=4):
            logging.getLogger("apache_beam").info("runner chatter")
            if what == "refused":
                raise LookupError("the session is blocked")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
print("not stopped")
"""


def _stage(tmp_path, what: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STAGE, str(tmp_path), what], capture_output=True, text=True,
                          timeout=60)


def test_a_stopped_shard_stage_says_what_it_kept_and_how_to_resume(tmp_path):
    done = _stage(tmp_path, "signal")
    assert done.returncode == 143, done.stderr[-2000:]
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: interrupted by SIGTERM: 1 complete audio shards kept in {tmp_path}/shards; "
        f"resume with: cadenza ingest --out {tmp_path}")


def test_a_refused_shard_stage_is_one_red_line_and_its_exit_status(tmp_path):
    done = _stage(tmp_path, "refused")
    assert done.returncode == 4, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == ["error: the session is blocked"]
    assert "runner chatter" in (tmp_path / "ingest.log").read_text()
