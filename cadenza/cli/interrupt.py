"""Ctrl-C (SIGINT) and SIGTERM: stop cleanly, say what was kept and how to resume, exit 130 / 143.

Two ways, by what a stage can promise:

- `hard_stop_on_signal` for the Beam stages (ingest, tokenize) and audit. Everything they keep is written
  atomically with its completion marker last, so stopping at any instant leaves only whole, marked outputs
  (the kill -9 tests show a rerun then equals an uninterrupted run). SIGINT and SIGTERM are blocked in this
  process, and so in every thread and child process it starts (a blocked mask survives fork and exec): a
  worker never sees the signal, so it can neither record in-flight clips as failures nor finish a shard with
  half its rows. One watcher thread waits for the signal, kills every descendant process (Beam workers,
  yt-dlp, ffmpeg), prints one line and ends the process at once.
- `StopRequest` for train, which can end a step and write a checkpoint: the signal sets a flag the training
  loop reads between steps.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


class Interrupted(Exception):
    """A command stopped by a signal after keeping what it could; the message says what and how to resume."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.status = exit_status(signum)


def command_line(argv: list[str] | None = None) -> str:
    """The command being run, as a user can paste it again."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["cadenza", *args])


def kill_descendants() -> None:
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=5)


def _say(line: str, stream: object = None) -> None:
    out = stream or sys.stderr
    try:
        out.write(f"error: {line}\n")  # type: ignore[attr-defined]
        out.flush()  # type: ignore[attr-defined]
    except (OSError, ValueError):
        pass


def _mute_other_threads() -> object:
    """Silence what other threads would print while the workers are being killed (a runner's threads
    report their worker's death with a traceback); returns the stream to write the last line to."""
    terminal = sys.stderr
    threading.excepthook = lambda _args: None
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process ends right after)
    return terminal


@contextmanager
def hard_stop_on_signal(kept: Callable[[], str]) -> Iterator[None]:
    """Inside: SIGINT/SIGTERM end the process (and its children) with one line `interrupted: <kept()>`.

    `kept()` describes what is on disk and how to resume; it runs in the watcher thread, so it only reads.
    Works only from the main thread (elsewhere it does nothing).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    done = threading.Event()

    def watch() -> None:
        signum = signal.sigwait(SIGNALS)
        if done.is_set():  # woken by the body's end (below), not by a user
            return
        terminal = _mute_other_threads()
        kill_descendants()
        try:
            message = kept()
        except Exception as exc:  # noqa: BLE001 (the exit must happen whatever the summary does)
            message = f"could not summarise the output ({type(exc).__name__}: {exc}); rerun the same command"
        _say(f"interrupted by {signal.Signals(signum).name}: {message}", terminal)
        os._exit(exit_status(signum))

    watcher = threading.Thread(target=watch, name="signal-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        # wake the watcher with a signal meant for it alone, so that it never takes a later signal
        signal.pthread_kill(watcher.ident, signal.SIGINT)  # type: ignore[arg-type]
        watcher.join(5)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def stop_at_once_on_signal() -> Iterator[None]:
    """The default for a whole command: SIGINT/SIGTERM print one line and exit 130/143 (no traceback).
    Stages that keep work install their own handling inside (hard_stop_on_signal, StopRequest)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        terminal = _mute_other_threads()
        kill_descendants()
        _say(f"interrupted by {signal.Signals(signum).name}; resume with: {command_line()}",
             terminal)
        os._exit(exit_status(signum))

    previous = {s: signal.signal(s, stop) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class StopRequest:
    """Set by SIGINT/SIGTERM while installed; a loop polls `requested` and stops at a safe point.
    A second signal stops at once (the default action), for a loop that never reaches its safe point."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
