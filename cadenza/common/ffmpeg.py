"""Make an executable named exactly `ffmpeg` findable on PATH.

yt-dlp's download ranges and librosa's audioread backend look up `ffmpeg` by name on PATH and ignore
any configured location. When the system has none, we expose the binary that the imageio-ffmpeg wheel
ships through a symlink named `ffmpeg` in a directory of ours, and put that directory first on PATH
for this process and the processes it starts.

The directory is one per imageio-ffmpeg binary (`$CADENZA_CACHE/bin/<hash of its path>/`): two
virtualenvs on one machine share the cache, and a single shared link would be repointed by each of them
under the other's running workers. The link is made under a name unique to the process and thread, then
renamed into place, because the DirectRunner sets DoFns up in several threads of one process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from pathlib import Path

from cadenza.common.sources import cache_dir


class FFmpegNotFound(RuntimeError):
    pass


def ensure_ffmpeg() -> str:
    """Return the path of the `ffmpeg` found on PATH, installing the shim first if needed."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise FFmpegNotFound(
            "ffmpeg is not on PATH and imageio-ffmpeg is not installed: `pip install imageio-ffmpeg` "
            "or install ffmpeg with your system's package manager"
        ) from exc
    shim = expose_as_ffmpeg(Path(imageio_ffmpeg.get_ffmpeg_exe()))
    shim_dir = shim.parent
    os.environ["PATH"] = f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    found = shutil.which("ffmpeg")
    if not found:
        raise FFmpegNotFound(f"could not expose ffmpeg at {shim}")
    return found


def expose_as_ffmpeg(real: Path) -> Path:
    """A link named `ffmpeg` to `real`, in the cache folder that belongs to `real` alone."""
    shim_dir = cache_dir() / "bin" / hashlib.sha256(str(real).encode()).hexdigest()[:16]
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "ffmpeg"
    if not (shim.is_symlink() and shim.resolve() == real.resolve()):
        tmp = shim_dir / f".ffmpeg.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}"
        tmp.symlink_to(real)
        os.replace(tmp, shim)  # atomic: parallel workers never see a half-made link
    return shim
