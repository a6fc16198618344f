"""Reconstruction distances, as training losses (torch, differentiable) and as metrics (one clip).

The same functions are the codec's training objective and the numbers `cadenza codec eval` reports,
so a training curve and an evaluation speak the same units:
- log-mel L1: mean |log(mel(x) + 1e-5) - log(mel(y) + 1e-5)| with 64 mel bands (n_fft 1024, hop 256);
- multi-resolution STFT distance: spectral convergence + log-magnitude L1, averaged over 3 resolutions;
- SI-SNR in dB (scale-invariant signal-to-noise ratio);
- frame-locked L1: the error's mean pattern per hop phase (see `frame_locked_l1`), training only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)
MEL_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
LOG_EPS = 1e-5


@lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).astype(np.float32))


@lru_cache(maxsize=16)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft)


def _magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """[B, N] -> [B, F, T] STFT magnitudes (inputs shorter than n_fft are zero-padded)."""
    if x.shape[-1] < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
    spec = torch.stft(x, n_fft, hop, window=_window(n_fft).to(x.device), return_complex=True, center=True)
    return spec.abs().clamp_min(1e-7)


def log_mel(x: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 64) -> torch.Tensor:
    mel = _mel_basis(sample_rate, n_fft, n_mels).to(x.device) @ _magnitude(x, n_fft, hop)
    return torch.log(mel + LOG_EPS)


def log_mel_l1(x: torch.Tensor, y: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256) -> torch.Tensor:
    """Per item: [B, N] x [B, N] -> [B]."""
    return (log_mel(x, sample_rate, n_fft, hop) - log_mel(y, sample_rate, n_fft, hop)).abs().mean(dim=(1, 2))


def multires_mel_l1(x: torch.Tensor, y: torch.Tensor, sample_rate: int) -> torch.Tensor:
    return torch.stack([log_mel_l1(x, y, sample_rate, n, h) for n, h in MEL_RESOLUTIONS]).mean(0)


def stft_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT distance per item ([B]): spectral convergence + log-magnitude L1."""
    out = []
    for n_fft, hop in STFT_RESOLUTIONS:
        mx, my = _magnitude(x, n_fft, hop), _magnitude(y, n_fft, hop)
        convergence = torch.linalg.norm((mx - my).flatten(1), dim=1) / torch.linalg.norm(mx.flatten(1), dim=1)
        log_l1 = (mx.log() - my.log()).abs().mean(dim=(1, 2))
        out.append(convergence + log_l1)
    return torch.stack(out).mean(0)


def fold_frames(x: torch.Tensor, hop: int) -> torch.Tensor:
    """[B, N] -> [B, hop]: the mean over whole frames of each sample phase within a frame (the frame-locked
    pattern; ~0 for audio that is not periodic at the frame rate)."""
    frames = x.shape[-1] // hop
    if frames < 1:
        raise ValueError(f"need at least one frame of {hop} samples, got {x.shape[-1]}")
    return x[..., : frames * hop].reshape(*x.shape[:-1], frames, hop).mean(-2)


def frame_locked_l1(x: torch.Tensor, y: torch.Tensor, hop: int) -> torch.Tensor:
    """Per item ([B]): L1 between the frame-locked patterns of target x and decode y, relative to mean |x|.

    A decoder's strided transposed convolutions leave a waveform that repeats every hop, in phase with the
    frame grid: a buzz at the frame rate and its harmonics that every decode shares. Averaging over frames
    keeps exactly that part (anything not locked to the grid averages out), so this term penalises the
    buzz and hardly anything else. Relative to the clip's level, like the log-spectral terms."""
    diff = (fold_frames(y, hop) - fold_frames(x, hop)).abs().mean(-1)
    return diff / x.abs().mean(-1).clamp_min(1e-3)


def si_snr(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SNR in dB per item ([B]); higher is better."""
    ref = reference - reference.mean(-1, keepdim=True)
    est = estimate - estimate.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + 1e-8)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10(((target * target).sum(-1) + 1e-8) / ((noise * noise).sum(-1) + 1e-8))


def reconstruction_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The three distances for one mono clip and its reconstruction (trimmed to the shorter of the two)."""
    n = min(len(reference), len(estimate))
    x = torch.from_numpy(np.ascontiguousarray(reference[:n], dtype=np.float32))[None]
    y = torch.from_numpy(np.ascontiguousarray(estimate[:n], dtype=np.float32))[None]
    with torch.no_grad():
        return {"log_mel_l1": float(log_mel_l1(x, y, sample_rate)[0]), "stft_distance": float(stft_distance(x, y)[0]),
                "si_snr": float(si_snr(x, y)[0])}


METRIC_DIRECTION = {"log_mel_l1": "lower", "stft_distance": "lower", "si_snr": "higher"}
