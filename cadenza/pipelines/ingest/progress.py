"""The ingest's progress bar: rows done, counted from the shards' stats files as they appear (see
`cadenza.pipelines.beam` for why markers, not Beam metrics)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from cadenza.formats import shards, storage
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
        fs, p = storage.filesystem(path)
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
