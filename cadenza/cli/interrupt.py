"""Ctrl-C (SIGINT) and SIGTERM: stop cleanly, say what was kept and how to resume, exit 130 / 143.

One watcher thread takes every SIGINT/SIGTERM of a command (`signals_to_watcher`, entered by `main()` before
any work starts). The signals are blocked in the main thread first, so every thread and child process
started afterwards has them blocked too (a blocked mask survives fork and exec): no Beam worker, fetch
thread, DataLoader worker, yt-dlp or ffmpeg ever sees a signal, wherever in the run it lands, and no thread
but the watcher can take it. What the watcher does depends on the stage that is running:

- by default (`at_once`): kill every descendant process, print the command-wide line, exit;
- `hard_stop_on_signal` for the Beam stages (ingest and tokenize, through `resumable_shard_stage`) and
  audit. Everything they keep is written atomically with its completion marker last, so stopping at any
  instant leaves only whole, marked outputs (the kill -9 tests show a rerun then equals an uninterrupted
  run). The watcher kills every descendant (Beam workers, yt-dlp, ffmpeg), prints one line saying what was
  kept, and ends the process at once;
- `StopRequest` for train, which can end a step and write a checkpoint: the first signal sets a flag the
  training loop reads between steps; a second one stops at once.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

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


def kill_descendants(timeout_s: float = 5.0) -> None:
    """SIGKILL every descendant and wait until none runs any more. A zombie counts as ended: reaping one
    whose parent died is init's business, and a container's init can take seconds to get to it (waiting
    for that, as psutil.wait_procs does, made a stop take 1.6 s)."""
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
    deadline = time.monotonic() + timeout_s
    while any(_runs(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.01)


def _runs(process: psutil.Process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone, or no longer ours to look at
        return False


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


Handler = Callable[[int], None]
_handlers: list[Handler] = []  # the innermost stage's handler is last; the watcher calls it
_watching = threading.Event()
_stopping = threading.Event()  # set once the watcher has taken a signal


def _quiet_when_stopping(default: Callable[[threading.ExceptHookArgs], object]):
    """A thread's uncaught exception is dropped once a stop signal has arrived: a child that the signal
    reached first (Beam starts its SDK workers through /bin/sh, which unblocks signals) dies of it, and the
    runner's thread would print a traceback in the instant before the watcher mutes the process."""
    def hook(args: threading.ExceptHookArgs) -> None:
        if _stopping.is_set() or set(SIGNALS) & signal.sigpending():
            return
        default(args)
    return hook


def at_once(signum: int) -> None:
    """The command-wide stop: every descendant killed, one line, exit 130 / 143."""
    _stop(signum, lambda: f"resume with: {command_line()}", sep="; ")


def _stop(signum: int, kept: Callable[[], str], sep: str = ": ") -> None:
    terminal = _mute_other_threads()
    kill_descendants()
    try:
        message = kept()
    except Exception as exc:  # noqa: BLE001 (the exit must happen whatever the summary does)
        message = f"could not summarise the output ({type(exc).__name__}: {exc}); rerun the same command"
    _say(f"interrupted by {signal.Signals(signum).name}{sep}{message}", terminal)
    os._exit(exit_status(signum))


@contextmanager
def signals_to_watcher() -> Iterator[None]:
    """Inside: SIGINT/SIGTERM go to one watcher thread that calls the innermost handler (`at_once` when no
    stage installed one). Works only from the main thread; nested uses share the outer watcher."""
    if threading.current_thread() is not threading.main_thread() or _watching.is_set():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    previous_hook = threading.excepthook
    threading.excepthook = _quiet_when_stopping(previous_hook)
    done = threading.Event()

    def watch() -> None:
        while True:
            signum = signal.sigwait(SIGNALS)
            if done.is_set():  # woken by the body's end (below), not by a user
                return
            _stopping.set()
            (_handlers[-1] if _handlers else at_once)(signum)

    watcher = threading.Thread(target=watch, name="signal-watcher", daemon=True)
    _watching.set()
    watcher.start()
    try:
        yield
    finally:
        done.set()
        # wake the watcher with a signal meant for it alone, so that it never takes a later signal
        signal.pthread_kill(watcher.ident, signal.SIGINT)  # type: ignore[arg-type]
        watcher.join(5)
        _watching.clear()
        threading.excepthook = previous_hook
        _stopping.clear()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def handling_signals(handler: Handler) -> Iterator[None]:
    """Inside: the watcher (started here when `main()` has not) calls `handler(signum)` on a signal."""
    with signals_to_watcher():
        _handlers.append(handler)
        try:
            yield
        finally:
            _handlers.remove(handler)


def hard_stop_on_signal(kept: Callable[[], str]):  # noqa: ANN201 (a context manager)
    """Inside: SIGINT/SIGTERM end the process (and its children) with one line `interrupted: <kept()>`.

    `kept()` describes what is on disk and how to resume; it runs in the watcher thread, so it only reads.
    """
    return handling_signals(lambda signum: _stop(signum, kept))


@contextmanager
def resumable_shard_stage(
    out: str, command: str, shard_kind: str, verbose: bool, refused: type[Exception], refused_status: int
) -> Iterator[None]:
    """Inside: one run of a Beam stage that keeps its complete shards (ingest, tokenize). Library logs go to
    OUT/<command>.log; SIGINT/SIGTERM stop it at once, saying how many complete shards are kept and the
    command that resumes; `refused` (the stage cannot go on, and saying why is enough) is one red line and
    exit status `refused_status`."""
    import typer

    from cadenza.cli.logs import library_logs_to_file

    try:
        with hard_stop_on_signal(lambda: _shards_kept(out, shard_kind)), library_logs_to_file(out, command, verbose):
            yield
    except refused as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(refused_status) from None


def _shards_kept(out: str, shard_kind: str) -> str:
    from cadenza.formats.shards import list_shards
    from cadenza.formats.storage import join

    done = len(list_shards(join(out, "shards")))
    return f"{done} complete {shard_kind} shards kept in {out}/shards; resume with: {command_line()}"


class StopRequest:
    """Set by SIGINT/SIGTERM while entered; a loop polls `requested` and stops at a safe point.
    A second signal stops at once, for a loop that never reaches its safe point; `resume` gives the command
    that line names (the command as typed when None)."""

    def __init__(self, resume: Callable[[], str] | None = None) -> None:
        self.signum: int | None = None
        self.resume = resume or command_line
        self._handling = handling_signals(self._handle)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int) -> None:
        if self.signum is not None:
            _stop(signum, lambda: f"resume with: {self.resume()}", sep="; ")
        self.signum = signum

    def __enter__(self) -> StopRequest:
        self._handling.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._handling.__exit__(*exc)
