"""Synthetic YouTube media for every ytid of a MusicCaps CSV, and the faults the rehearsal's server plants.

Each ytid gets one file, `{ytid}.{ext}`, in one of the three formats YouTube serves a video's audio in:
m4a (AAC audio, itag 140), webm (Opus audio, itag 251) and mp4 (the progressive H.264 + AAC file, itag 18),
chosen by a hash of the ytid. The file is longer than the 10 s window and holds it where the CSV says:
a shared, pre-encoded stretch of quiet noise up to a few seconds before `start_s`, then audio of its own
(a seeded chord, different per ytid) through the window and a few seconds past `end_s`. Only that own
part, 15-20 s, is encoded per ytid; the lead-in is joined by a stream copy, so a window at 590 s costs
about as much to make as one at 0 s. Files are cached in the media directory: a rerun reuses them.
"""

from __future__ import annotations

import os
import subprocess
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FORMATS = ("m4a", "webm", "mp4")
# (sample rate, codec args); the mp4 also carries a tiny video track, as YouTube's progressive mp4 does
ENCODE = {
    "m4a": (44100, ["-c:a", "aac", "-b:a", "64k"]),
    "webm": (48000, ["-c:a", "libopus", "-b:a", "64k"]),
    "mp4": (44100, ["-c:a", "aac", "-b:a", "64k", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
}
CONTAINER_ARGS = {"m4a": ["-movflags", "+faststart"], "mp4": ["-movflags", "+faststart"], "webm": []}
VIDEO_SOURCE = "color=c=0x203040:s=64x36:r=1"
FAULT_KINDS = ("404", "410", "429-then-200", "truncated")
FILLER_STEM = ".filler"  # dot-prefixed: the media server never serves it


def _hash(tag: str, ytid: str) -> int:
    return zlib.crc32(f"{tag}/{ytid}".encode())


def format_for(ytid: str) -> str:
    return FORMATS[_hash("format", ytid) % len(FORMATS)]


def fault_plan(ytids: list[str], share: float) -> dict[str, str]:
    """Every round(1/share)-th ytid (from the 8th on) misbehaves, cycling through FAULT_KINDS."""
    if share <= 0:
        return {}
    every = max(1, round(1 / share))
    picked = [y for i, y in enumerate(ytids) if i % every == min(7, every - 1)]
    return {y: FAULT_KINDS[n % len(FAULT_KINDS)] for n, y in enumerate(picked)}


def _ffmpeg(args: list[str], stdin: bytes | None = None) -> None:
    from cadenza.common.ffmpeg import ensure_ffmpeg

    res = subprocess.run([ensure_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                         input=stdin, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args[-1:])}: {res.stderr.decode(errors='replace')[-400:]}")


def _encode(out: Path, fmt: str, seconds: float, audio_in: list[str], stdin: bytes | None = None) -> None:
    sr, codec = ENCODE[fmt]
    video = ["-f", "lavfi", "-t", f"{seconds:.3f}", "-i", VIDEO_SOURCE] if fmt == "mp4" else []
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
    _ffmpeg([*audio_in, *video, "-t", f"{seconds:.3f}", "-ar", str(sr), "-ac", "2", *codec, "-map_metadata", "-1",
             "-fflags", "+bitexact", *CONTAINER_ARGS[fmt], str(tmp)], stdin)
    os.replace(tmp, out)


def filler(media_dir: Path, fmt: str, seconds: float) -> Path:
    """The shared lead-in of quiet pink noise, encoded once per format (longer ones replace shorter)."""
    path = media_dir / f"{FILLER_STEM}.{fmt}"
    marker = path.with_suffix(path.suffix + ".seconds")
    if path.is_file() and marker.is_file() and float(marker.read_text()) >= seconds:
        return path
    sr = ENCODE[fmt][0]
    _encode(path, fmt, seconds, ["-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=0.02:r={sr}"])
    marker.write_text(f"{seconds}")
    return path


def make_one(media_dir: str, ytid: str, start_s: float, end_s: float) -> tuple[int, bool]:
    """Write `{ytid}.{fmt}` unless it exists; returns its size in bytes and whether it was made now."""
    import numpy as np

    from cadenza.testing.mediaserver import synth_audio

    root = Path(media_dir)
    fmt = format_for(ytid)
    out = root / f"{ytid}.{fmt}"
    if out.is_file():
        return out.stat().st_size, False
    h = _hash("length", ytid)
    pre = min(start_s, 2.0 + h % 4)  # own audio starts 2-5 s before the window (or at 0)
    post = 3.0 + (h >> 8) % 3  # and runs 3-5 s past its end
    own_s = (end_s - start_s) + pre + post
    sr = ENCODE[fmt][0]
    pcm = synth_audio(own_s, sr, seed=_hash("audio", ytid), channels=2).T
    raw = ["-f", "f32le", "-ar", str(sr), "-ac", "2", "-i", "pipe:0"]
    lead = start_s - pre
    if lead <= 0:
        _encode(out, fmt, own_s, raw, np.ascontiguousarray(pcm).tobytes())
        return out.stat().st_size, True
    own = root / f".{ytid}.own.{fmt}"
    _encode(own, fmt, own_s, raw, np.ascontiguousarray(pcm).tobytes())
    listing = root / f".{ytid}.concat.txt"
    listing.write_text(f"file '{root / (FILLER_STEM + '.' + fmt)}'\noutpoint {lead:.3f}\nfile '{own}'\n")
    tmp = root / f".{ytid}.{os.getpid()}.tmp.{fmt}"
    _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", "-map_metadata", "-1",
             *CONTAINER_ARGS[fmt], str(tmp)])
    os.replace(tmp, out)
    own.unlink()
    listing.unlink()
    return out.stat().st_size, True


def make_media(media_dir: Path, rows: list[tuple[str, float, float]], workers: int = 2) -> dict[str, int]:
    """Media for every (ytid, start_s, end_s), `workers` at a time: the count per format, the bytes, and how
    many files were made now (the others were in the cache)."""
    media_dir.mkdir(parents=True, exist_ok=True)
    longest = max((s for _, s, _ in rows), default=0.0) + 1.0
    for fmt in FORMATS:
        filler(media_dir, fmt, longest)
    counts = {fmt: 0 for fmt in FORMATS}
    total = made = 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        sizes = pool.map(make_one, *zip(*[(str(media_dir), y, s, e) for y, s, e in rows], strict=True),
                         chunksize=8)
        for (ytid, _, _), (size, new) in zip(rows, sizes, strict=True):
            counts[format_for(ytid)] += 1
            total += size
            made += new
    return {**counts, "bytes": total, "made": made}
