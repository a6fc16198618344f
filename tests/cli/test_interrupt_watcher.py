"""The signal watcher in-process: a thread's traceback is kept before a stop signal and dropped after it."""

from __future__ import annotations

import os
import signal
import threading
import time

from cadenza.cli.interrupt import handling_signals


def _raise_in_thread(name: str) -> None:
    def fail() -> None:
        raise RuntimeError(f"{name} died")

    t = threading.Thread(target=fail, name=name)
    t.start()
    t.join()


def test_thread_exceptions_are_dropped_once_a_stop_signal_arrived(monkeypatch):
    """Beam starts SDK workers through /bin/sh, which unblocks signals: a group SIGTERM kills them first and
    the runner's thread raises. That traceback must not reach the user's terminal before the one line."""
    seen: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(str(args.exc_value)))
    signals: list[int] = []
    with handling_signals(signals.append):
        _raise_in_thread("before")
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not signals and time.monotonic() < deadline:
            time.sleep(0.01)
        _raise_in_thread("run_worker")
    _raise_in_thread("after")  # the watcher is gone: exceptions are reported again
    assert signals == [signal.SIGTERM]
    assert seen == ["before died", "after died"]
