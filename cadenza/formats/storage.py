"""fsspec helpers every writer and reader of cadenza's outputs uses: local paths or any URL (gs://, s3://,
memory://...), atomic writes (a temporary sibling renamed over the target), JSON, and disk-full detection.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from typing import Any

import fsspec


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def absolute(path: str) -> str:
    """A local path made absolute, a URL (gs://, s3://, ...) as given: the workers of a distributed runner
    (a Dask worker, an SDK worker pool) do not run in the launcher's working directory."""
    if "://" in path:
        return path.rstrip("/")
    return os.path.abspath(path)


def filesystem(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem of `path` and the path within it."""
    fs, p = fsspec.core.url_to_fs(path)
    return fs, p


def makedirs(path: str) -> None:
    fs, p = filesystem(path)
    fs.makedirs(p, exist_ok=True)


def exists(path: str) -> bool:
    fs, p = filesystem(path)
    return fs.exists(p)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write to a temporary sibling, then rename over `path`."""
    fs, p = filesystem(path)
    parent = p.rsplit("/", 1)[0] if "/" in p else "."
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{p}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
    except BaseException:
        # e.g. a full disk: don't leave a half-written temp file holding the space a resume needs
        try:
            fs.rm(tmp)
        except (OSError, FileNotFoundError):
            pass
        raise
    fs.mv(tmp, p)


def remove_partial_writes(directory: str) -> None:
    """Delete the temp files of atomic writes a killed run never renamed (they are never read, but hold
    space). Call it before a run starts writing into `directory`."""
    fs, p = filesystem(directory)
    for f in fs.ls(p, detail=False) if fs.exists(p) else []:
        if ".tmp-" in f.rsplit("/", 1)[-1]:
            fs.rm(f)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it wraps) is ENOSPC, by type or by the errno in its text."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        text = str(e)  # Beam's RuntimeError and safetensors' Rust error keep only the text
        if f"[Errno {errno.ENOSPC}]" in text or f"os error {errno.ENOSPC})" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def write_json_atomic(path: str, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: str) -> Any:
    fs, p = filesystem(path)
    with fs.open(p, "rb") as f:
        return json.loads(f.read())
