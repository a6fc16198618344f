"""WAV files and spectrogram PNGs for generated audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    # decoders of badly trained models can overshoot; scale down rather than clip
    data = audio / peak * 0.99 if peak > 1.0 else audio
    sf.write(str(path), data.astype(np.float32), sample_rate, subtype="PCM_16")


def log_spectrogram(audio: np.ndarray, sample_rate: int, n_fft: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.signal import stft

    n_fft = max(16, min(n_fft, len(audio)))
    f, t, z = stft(audio, fs=sample_rate, nperseg=n_fft, noverlap=n_fft * 3 // 4)
    return f, t, 20 * np.log10(np.abs(z) + 1e-6)


def write_spectrogram(path: Path, audio: np.ndarray, sample_rate: int, title: str = "") -> None:
    from cadenza.common.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3))
    if audio.size >= 16:
        f, t, db = log_spectrogram(audio, sample_rate)
        mesh = ax.pcolormesh(t, f, db, shading="auto", vmin=db.max() - 80, vmax=db.max())
        fig.colorbar(mesh, ax=ax, label="dB")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
