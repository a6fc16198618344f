"""Where outside data comes from: local paths, or URLs fetched once into a cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path


class SourceError(RuntimeError):
    """An input could not be read at all; the message says which and what to do."""


def cache_dir() -> Path:
    """$CADENZA_CACHE, else $XDG_CACHE_HOME/cadenza, else ~/.cache/cadenza."""
    if env := os.environ.get("CADENZA_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza"


def is_url(spec: str) -> bool:
    return spec.split("://", 1)[0] in ("http", "https") and "://" in spec


def resolve_source(spec: str | os.PathLike[str], *, what: str, timeout_s: float = 60.0) -> Path:
    """Return a local path for `spec`: a path as is, or a URL downloaded once into the cache.

    `what` names the input in error messages ("the MusicCaps CSV").
    """
    spec = os.fspath(spec)
    if not is_url(spec):
        path = Path(spec)
        if path.is_dir():
            raise SourceError(f"{what}: {path} is a directory; expected a file")
        if not path.is_file():
            raise SourceError(f"{what}: no such file: {path}")
        return path
    name = Path(spec.split("?", 1)[0]).name or "download"
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    target = cache_dir() / "downloads" / f"{digest}-{name}"
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(spec, timeout=timeout_s) as resp:  # noqa: S310 (http/https checked above)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                shutil.copyfileobj(resp, tmp)
        os.replace(tmp.name, target)
    except OSError as exc:
        raise SourceError(
            f"{what}: could not download {spec}: {exc}. Check your network, or download the file "
            f"yourself and pass its local path instead of the URL."
        ) from exc
    return target
