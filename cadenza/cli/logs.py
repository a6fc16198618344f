"""Where log records go while a stage runs: everything into OUT/<command>.log, the terminal only for
cadenza's own warnings (or everything with -v), so that Apache Beam's INFO and WARNING chatter does not
bury progress and results."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


class _OwnWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("cadenza") and record.levelno >= logging.WARNING


def _real_stderr_fd() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # captured by a test runner: not a real descriptor
        return False


@contextmanager
def _child_stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at `path`, so that child processes (Beam's SDK workers log straight to
    their inherited stderr) and C libraries (gRPC) write there, while Python's sys.stderr (progress bars,
    cadenza's messages) keeps writing to the terminal through a duplicate of the original descriptor."""
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    terminal: TextIO = os.fdopen(terminal_fd, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                                 errors="backslashreplace")
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    previous, sys.stderr = sys.stderr, terminal
    try:
        yield
    finally:
        terminal.flush()
        sys.stderr = previous
        os.dup2(terminal.fileno(), 2)
        terminal.close()


@contextmanager
def library_logs_to_file(out: str, command: str, verbose: bool) -> Iterator[Path | None]:
    """Inside: INFO and up of every logger to OUT/<command>.log (local OUT only); stderr gets cadenza's
    warnings, or with `verbose` everything at INFO. Yields the log file's path (None for a remote OUT)."""
    root = logging.getLogger()
    log_path: Path | None = None
    ours: list[logging.Handler] = []
    if "://" not in out:
        log_path = Path(out).expanduser() / f"{command}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_path, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        to_file.setLevel(logging.INFO)
        ours.append(to_file)
    # Beam calls logging.basicConfig() when imported: its stderr handler is set aside while we run
    theirs = list(root.handlers)
    previous_level = root.level
    for h in theirs:
        root.removeHandler(h)
    root.setLevel(logging.INFO)
    redirect = log_path is not None and not verbose and _real_stderr_fd()
    try:
        with _child_stderr_to(log_path) if redirect and log_path else _nothing():
            to_terminal = logging.StreamHandler(sys.stderr)  # the terminal, also when fd 2 is redirected
            to_terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            to_terminal.setLevel(logging.INFO)
            if not verbose:
                to_terminal.addFilter(_OwnWarnings())
            for h in (*ours, to_terminal):
                root.addHandler(h)
            try:
                yield log_path
            finally:
                for h in (*ours, to_terminal):
                    root.removeHandler(h)
                    h.close()
    finally:
        for h in theirs:
            root.addHandler(h)
        root.setLevel(previous_level)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
