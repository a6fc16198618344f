"""Where log records go while a stage runs: everything into OUT/<command>.log, the terminal only for
cadenza's own warnings (or everything with -v), so that Apache Beam's INFO and WARNING chatter does not
bury progress and results."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _OwnWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("cadenza") and record.levelno >= logging.WARNING


@contextmanager
def library_logs_to_file(out: str, command: str, verbose: bool) -> Iterator[Path | None]:
    """Inside: INFO and up of every logger to OUT/<command>.log (local OUT only); stderr gets cadenza's
    warnings, or with `verbose` everything at INFO. Yields the log file's path (None for a remote OUT)."""
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    log_path: Path | None = None
    if "://" not in out:
        log_path = Path(out).expanduser() / f"{command}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_path, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        to_file.setLevel(logging.INFO)
        handlers.append(to_file)
    to_terminal = logging.StreamHandler(sys.stderr)
    to_terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    to_terminal.setLevel(logging.INFO)
    if not verbose:
        to_terminal.addFilter(_OwnWarnings())
    handlers.append(to_terminal)
    previous_level = root.level
    root.setLevel(logging.INFO)
    for h in handlers:
        root.addHandler(h)
    try:
        yield log_path
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()
        root.setLevel(previous_level)
