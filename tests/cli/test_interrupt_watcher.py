"""The signal watcher in a process of its own: a thread's traceback is kept before a stop signal and dropped
after it."""

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
