"""What every training loop here shares besides checkpoints: the step progress bar, the metrics log that a
resume trims back to its checkpoint, and a scoped torch thread count."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cadenza.formats.storage import write_bytes_atomic


def step_progress(label: str, total: int, start: int, enabled: bool = True) -> Any:
    """A started rich progress bar (on stderr) over optimizer steps with a `loss` field, or None."""
    if not enabled or start >= total:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
                   TimeRemainingColumn(), transient=False, console=Console(stderr=True))
    bar.add_task(label, total=total, completed=start, loss=float("nan"))
    bar.start()
    return bar


def truncate_metrics_log(path: Path, step: int) -> None:
    """After a resume, drop lines the interrupted run logged past the checkpoint (step -1: all of them)."""
    if not path.exists():
        return
    keep = []
    for ln in path.read_text().splitlines():
        try:
            row = json.loads(ln)
        except json.JSONDecodeError:  # a line torn by a kill mid-write
            continue
        if row.get("step", 0) <= step:
            keep.append(ln)
    # atomic: a kill during this rewrite must not lose the lines before the checkpoint
    write_bytes_atomic(str(path), "".join(ln + "\n" for ln in keep).encode())


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with `count` torch threads (None: leave as is), then give the caller back its own setting."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
