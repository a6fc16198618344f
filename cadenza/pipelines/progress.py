"""Progress bars the driver draws while any runner works: they watch the shards' stats files.

ShardProgress counts ingest rows, ShardWatcher advances a ProgressBar by finished token shards.

Beam metrics are only reliable once a job ends (and their live API differs per runner), but every
runner writes the same completion markers, so polling them works for local and remote runs alike.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from cadenza.formats import shards
from cadenza.pipelines.ingest.shard_plan import ShardTask, shard_paths

log = logging.getLogger(__name__)


class ShardProgress:
    def __init__(self, out: str, tasks: list[ShardTask], *, enabled: bool = True, interval_s: float = 0.5):
        self.out = out
        self.pending = {t.name: len(t.retry_keys) if t.retry_keys is not None else len(t.clips) for t in tasks}
        self.enabled = enabled and bool(tasks)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Any = None
        self._bar: Any = None
        # a retried shard already has a stats file: only a newer one counts
        self._before = {name: self._mtime(name) for name in self.pending}

    def _mtime(self, name: str) -> float | None:
        tar, _ = shard_paths(self.out, name)
        path = shards.stats_path(tar)
        fs, p = shards._fs(path)
        try:
            return fs.modified(p).timestamp() if fs.exists(p) else None
        except (NotImplementedError, OSError):
            return None

    def refresh(self) -> None:
        if not self.enabled:
            return
        for name in list(self.pending):
            m = self._mtime(name)
            if m is not None and m != self._before[name]:
                self._progress.advance(self._bar, self.pending.pop(name))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 (a progress bar must never break the run)
                log.debug("progress poll failed: %s", exc)

    def __enter__(self) -> ShardProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # stderr: stdout carries results only (`ingest --json` is one JSON document)
            self._progress = Progress(
                TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn(),
                transient=False, console=Console(stderr=True),
            )
            self._bar = self._progress.add_task("rows", total=sum(self.pending.values()))
            self._progress.start()
            self._thread = threading.Thread(target=self._loop, name="ingest-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._progress is not None:
            self._progress.stop()


class ProgressBar:
    """A rich progress bar (or nothing); the context value is an `advance()` callable."""

    def __init__(self, enabled: bool, what: str, total: int) -> None:
        self.enabled, self.what, self.total = enabled, what, total

    def __enter__(self):
        if not self.enabled:
            return lambda n=1: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(transient=False, console=Console(stderr=True))  # stdout carries results only
        self.bar.start()
        task = self.bar.add_task(self.what, total=self.total)
        return lambda n=1: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.stop()


class ShardWatcher:
    """Polls for completion markers while the runner works, whichever runner and wherever it runs."""

    def __init__(self, tars: list[str], advance, interval_s: float = 1.0) -> None:
        self.tars, self.advance, self.interval_s = list(tars), advance, interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while self.tars and not self.stop.wait(self.interval_s):
            done = [t for t in self.tars if shards.exists(shards.stats_path(t))]
            for t in done:
                self.tars.remove(t)
            if done:
                self.advance(len(done))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._loop_once()

    def _loop_once(self) -> None:
        done = [t for t in self.tars if shards.exists(shards.stats_path(t))]
        if done:
            self.advance(len(done))
