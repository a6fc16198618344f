"""Audio steps of the ingest: decode, clip, mono, resample, quality stats, FLAC encode.

Decoding goes through FFmpeg's libraries (PyAV: any container yt-dlp may give us, m4a, webm,
opus, wav, mp3) to float32 at the file's own rate and channel count; clipping is done on samples,
so it is exact whatever the container's seek precision; resampling uses soxr (high quality). The FLAC
is 16-bit mono, and encoding it is deterministic: the same samples give the same bytes.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SILENCE_DBFS = -60.0  # a 20 ms frame quieter than this counts as silent
SILENCE_FRAME_S = 0.02
CLIP_LEVEL = 32767 / 32768  # a sample at full scale (after int16 quantisation) counts as clipped


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
    path: str | Path, *, start_s: float | None = None, duration_s: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode any audio file FFmpeg reads to float32 [channels, samples] at its own sample rate.

    Decoding runs in-process through PyAV (FFmpeg's libraries): an ffmpeg process per clip would
    cost more CPU to start than the decode itself. With `start_s`/`duration_s` only that part is
    returned, cut at the sample from the frames' timestamps after a seek, so a whole-file fallback
    never holds an hour of audio in memory; the result may then be short or empty when the file
    ends first. Without them, a file with no samples is a DecodeError.
    """
    import av

    name = Path(path).name
    windowed = start_s is not None or duration_s is not None
    start = max(0.0, start_s or 0.0)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(f"cannot open {name} as media: {exc}") from None
    chunks: list[np.ndarray] = []
    with container:
        if not container.streams.audio:
            raise DecodeError(f"{name} has no audio stream")
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate or 0)
        if sr <= 0:
            raise DecodeError(f"{name}: audio stream has no sample rate")
        want = None if duration_s is None else round(duration_s * sr)
        got = 0
        try:
            if start > 0:
                container.seek(int(start * 1_000_000), backward=True, any_frame=False)  # AV_TIME_BASE units
            for frame in container.decode(stream):
                x = frame_to_float(frame)  # any sample format or layout -> float [channels, n], same rate
                if windowed and frame.pts is not None:
                    t = float(frame.pts * frame.time_base)
                    skip = round((start - t) * sr)
                    if skip >= x.shape[1]:
                        continue
                    if skip > 0:
                        x = x[:, skip:]
                if want is not None:
                    x = x[:, : want - got]
                chunks.append(x)
                got += x.shape[1]
                if want is not None and got >= want:
                    break
        except av.FFmpegError as exc:
            if not chunks:
                raise DecodeError(f"cannot decode {name}: {exc}") from None
            # a damaged tail after good audio: keep what decoded; length checks judge it later
    if not chunks:
        if windowed:
            return np.zeros((stream.codec_context.channels or 1, 0), np.float32), sr
        raise DecodeError(f"{name} decodes to no audio samples")
    return np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32), sr


def frame_to_float(frame) -> np.ndarray:
    """A decoded PyAV audio frame as float32 [channels, samples], any sample format.

    Done in numpy rather than with av.AudioResampler: the resampler crashes the process (SIGSEGV, PyAV
    18) on layouts without a channel order, such as an 8-channel WAV without a channel mask.
    """
    x = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:  # interleaved: one row of samples * channels values
        x = x.reshape(-1, channels).T
    if x.dtype.kind == "u":  # 8-bit PCM is unsigned around 128
        return (x.astype(np.float32) - 128.0) / 128.0
    if x.dtype.kind == "i":
        return x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    return x.astype(np.float32, copy=False)


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
        return Quality(0.0, -120.0, 0.0, 1.0, 0.0)  # JSON has no -inf
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
