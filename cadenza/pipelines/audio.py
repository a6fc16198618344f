"""Audio steps of the ingest: decode, clip, mono, resample, quality stats, FLAC encode.

Decoding goes through ffmpeg (any container yt-dlp may give us: m4a, webm, opus, wav, mp3) into a
float32 WAV that soundfile reads with its true rate and channel count; clipping is done on samples,
so it is exact whatever the container's seek precision; resampling uses soxr (high quality). The FLAC
is 16-bit mono, and encoding it is deterministic: the same samples give the same bytes.
"""

from __future__ import annotations

import io
import math
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SILENCE_DBFS = -60.0  # a 20 ms frame quieter than this counts as silent
SILENCE_FRAME_S = 0.02
CLIP_LEVEL = 32767 / 32768  # a sample at full scale (after int16 quantisation) counts as clipped
DECODE_TIMEOUT_S = 300


class DecodeError(RuntimeError):
    """The file is not decodable audio (corrupt, truncated, not audio, no audio stream)."""


@dataclass(frozen=True)
class Quality:
    duration_s: float
    rms_dbfs: float
    peak: float
    silence_fraction: float
    clipping_fraction: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def decode(
    path: str | Path, *, start_s: float | None = None, duration_s: float | None = None, ffmpeg: str = "ffmpeg"
) -> tuple[np.ndarray, int]:
    """Decode any audio file ffmpeg reads to float32 [channels, samples] at its own sample rate.

    With `start_s`/`duration_s` only that part is decoded (ffmpeg seeks accurately when it decodes),
    so a whole-file fallback never holds an hour of audio in memory; the result may then be empty
    or short when the file ends first. Without them, a file with no samples is a DecodeError.
    """
    window: list[str] = []
    if start_s is not None:
        window += ["-ss", f"{start_s:.6f}"]
    if duration_s is not None:
        window += ["-t", f"{duration_s:.6f}"]
    with tempfile.TemporaryDirectory(prefix="cadenza-decode-") as tmp:
        wav = Path(tmp) / "decoded.wav"
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", *window, "-i", str(path),
               "-map", "0:a:0", "-vn", "-c:a", "pcm_f32le", "-f", "wav", str(wav)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=DECODE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DecodeError(f"ffmpeg took longer than {DECODE_TIMEOUT_S} s to decode {path}") from exc
        if proc.returncode != 0 or not wav.is_file():
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise DecodeError(f"ffmpeg could not decode {Path(path).name}: {err[-1] if err else 'no output'}")
        try:
            data, sr = sf.read(wav, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(f"unreadable decoded audio from {Path(path).name}: {exc}") from exc
    if data.shape[0] == 0 and not window:
        raise DecodeError(f"{Path(path).name} decodes to no audio samples")
    return np.ascontiguousarray(data.T), int(sr)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """[channels, n] -> [n] by averaging channels (keeps level for correlated stereo)."""
    return audio.mean(axis=0, dtype=np.float32) if audio.ndim == 2 else audio.astype(np.float32)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def clip_window(audio: np.ndarray, sr: int, start_s: float, end_s: float) -> np.ndarray:
    """Samples [start_s, end_s) of [..., n] audio; shorter when the audio ends first."""
    a, b = round(start_s * sr), round(end_s * sr)
    return audio[..., a:b]


def to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def quality_stats(pcm: np.ndarray, sr: int) -> Quality:
    """Stats of the stored int16 mono signal."""
    x = pcm.astype(np.float64) / 32768.0
    n = len(x)
    if n == 0:
        return Quality(0.0, -math.inf, 0.0, 1.0, 0.0)
    rms = float(np.sqrt(np.mean(x * x)))
    frame = max(1, round(SILENCE_FRAME_S * sr))
    usable = (n // frame) * frame or n
    frames = x[:usable].reshape(-1, min(frame, usable))
    frame_rms = np.sqrt(np.mean(frames * frames, axis=1))
    silent = frame_rms < 10 ** (SILENCE_DBFS / 20)
    return Quality(
        duration_s=round(n / sr, 6),
        rms_dbfs=round(20 * math.log10(rms), 3) if rms > 0 else -120.0,
        peak=round(float(np.max(np.abs(x))), 6),
        silence_fraction=round(float(silent.mean()), 6),
        clipping_fraction=round(float(np.mean(np.abs(x) >= CLIP_LEVEL)), 6),
    )


def encode_flac(pcm: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """FLAC bytes (as stored in a shard) -> int16 [n], sample rate."""
    pcm, sr = sf.read(io.BytesIO(data), dtype="int16")
    return pcm, int(sr)
