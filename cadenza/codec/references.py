"""What a codec evaluation compares a codec with, on the same clips: Opus at the codec's bitrate, noise
shaped to each clip's mel-band energies (right loudness in every band at every moment, no notes), and
another clip of the set. A metric that cannot rank original > Opus > shaped noise > another clip does
not measure what a listener hears (cadenza.codec.validity).
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache

import numpy as np

from cadenza.common.sources import SourceError

OPUS_MIN_KBPS = 6.0  # the lowest bitrate Opus is specified for (RFC 6716)
SHAPED_NOISE_BANDS = 64  # as log-mel L1 (cadenza.codec.losses)
SHAPED_NOISE_N_FFT = 1024


@lru_cache(maxsize=4)
def opus_ffmpeg() -> str:
    """The ffmpeg binary, checked to have the libopus encoder; a SourceError in one line if not."""
    from cadenza.common.ffmpeg import FFmpegNotFound, ensure_ffmpeg

    try:
        ffmpeg = ensure_ffmpeg()
    except FFmpegNotFound as exc:
        raise SourceError(f"codec eval needs ffmpeg with libopus for its Opus reference: {exc}") from None
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False)
    if " libopus " not in encoders.stdout:
        raise SourceError(f"codec eval needs ffmpeg with libopus for its Opus reference; {ffmpeg} has no libopus "
                          "encoder (install an ffmpeg built with --enable-libopus)")
    return ffmpeg


def opus_kbps(codec_kbps: float) -> float:
    return max(codec_kbps, OPUS_MIN_KBPS)


def opus_roundtrip(audio: np.ndarray, sample_rate: int, kbps: float) -> np.ndarray:
    """Mono float32 audio encoded with libopus at `kbps` and decoded back, same rate and length (ffmpeg
    resamples a rate libopus does not take)."""
    ffmpeg = opus_ffmpeg()
    pcm = ["-f", "f32le", "-ar", str(sample_rate), "-ac", "1"]
    encoded = subprocess.run([ffmpeg, "-v", "error", *pcm, "-i", "pipe:0", "-c:a", "libopus", "-b:a",
                              f"{int(kbps * 1000)}", "-f", "ogg", "pipe:1"],
                             input=np.ascontiguousarray(audio, dtype="<f4").tobytes(), capture_output=True, check=True)
    decoded = subprocess.run([ffmpeg, "-v", "error", "-i", "pipe:0", *pcm, "pipe:1"], input=encoded.stdout,
                             capture_output=True, check=True)
    out = np.frombuffer(decoded.stdout, dtype="<f4")[: len(audio)]  # the decoder drops Opus's pre-skip
    return np.pad(out, (0, len(audio) - len(out))).astype(np.float32)


def shaped_noise(audio: np.ndarray, sample_rate: int, hop: int, seed: int) -> np.ndarray:
    """Noise whose 64 mel-band energies follow the clip's frame by frame (one frame per `hop` samples)."""
    import librosa

    rng = np.random.default_rng(seed)
    n_fft = max(SHAPED_NOISE_N_FFT, 2 * hop)
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=SHAPED_NOISE_BANDS)
    target = mel @ (np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop)) ** 2)
    noise = librosa.stft(rng.standard_normal(len(audio)).astype(np.float32), n_fft=n_fft, hop_length=hop)
    have = mel @ (np.abs(noise) ** 2)
    # each band's power gain, spread over its bins by the filters' weights
    band_gain = target / np.maximum(have, 1e-12)
    weights = mel / np.maximum(mel.sum(axis=0, keepdims=True), 1e-12)
    bin_gain = np.sqrt(weights.T @ band_gain)
    out = librosa.istft(noise * bin_gain, hop_length=hop, n_fft=n_fft, length=len(audio))
    return out.astype(np.float32)


def noise_seed(key: str) -> int:
    """The shaped noise of a clip depends on its key only, not on which other clips are evaluated."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
