"""A random-weight EnCodec: for unit tests and as the baseline a trained codec must beat (labelled random_weights).

A freshly initialised `EncodecModel` has all-zero codebooks (every code would be 0), so its codebooks are
initialised by k-means over encoder outputs on sample audio, as EnCodec's own training does on its first
batch. `cadenza codec train` starts from the same k-means initialisation.
"""

from __future__ import annotations

import numpy as np

from cadenza.tokenizers.acoustic import codec_spec, encodec_config


def synthetic_calibration_audio(sample_rate: int, *, seconds: float = 4.0, count: int = 8, seed: int = 0):
    """Tones, chords, chirps and noise: a stand-in for data when a random codec is built without clips."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    clips = []
    for i in range(count):
        f0 = 55.0 * 2 ** (rng.uniform(0, 5))
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        chirp = np.sin(2 * np.pi * (f0 + 200 * t) * t)
        noise = rng.standard_normal(t.size)
        mix = [tone, chirp, noise, tone + 0.3 * noise][i % 4]
        clips.append((0.3 * mix / np.max(np.abs(mix))).astype(np.float32))
    return clips


def _kmeans(x, k: int, iters: int, generator):
    """Lloyd's k-means from k distinct random frames, as EnCodec initialises its codebooks."""
    import torch

    centroids = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    for _ in range(iters):
        dist = (x * x).sum(1, keepdim=True) - 2 * x @ centroids.T + (centroids * centroids).sum(1)
        assign = dist.argmin(1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    dist = (x * x).sum(1, keepdim=True) - 2 * x @ centroids.T + (centroids * centroids).sum(1)
    return centroids, dist.argmin(1)


def init_codebooks_kmeans(
    model, audio: list[np.ndarray], *, num_codebooks: int | None = None, seed: int = 0, max_frames: int = 4_096,
    iters: int = 6,
) -> None:
    """Set the first `num_codebooks` RVQ codebooks (all by default) by k-means over encoder outputs, then
    over their residuals, on `audio`."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        frames = [model.encoder(torch.from_numpy(a.astype(np.float32)).view(1, 1, -1))[0].T for a in audio]
        residual = torch.cat(frames)
        if len(residual) > max_frames:
            residual = residual[torch.randperm(len(residual), generator=gen)[:max_frames].sort().values]
        size = model.config.codebook_size
        for layer in model.quantizer.layers[:num_codebooks]:
            k = min(size, len(residual))
            centroids, assign = _kmeans(residual, k, iters, gen)
            if k < size:  # too few frames: pad with jittered copies so every code has a distinct vector
                extra = centroids[torch.randint(0, k, (size - k,), generator=gen)]
                jitter = 1e-3 * residual.std() * torch.randn(extra.shape, generator=gen)
                centroids = torch.cat([centroids, extra + jitter])
            residual = residual - centroids[assign]
            book = layer.codebook
            book.embed.copy_(centroids)
            book.embed_avg.copy_(centroids)
            book.cluster_size.copy_(torch.bincount(assign, minlength=size).float())


def build_random_codec(
    name: str, *, bandwidth: float | None = None, calibration: list[np.ndarray] | None = None, small: bool = False,
    seed: int = 0,
):
    """A seeded random-weight EncodecModel whose codebooks used at `bandwidth` are k-means-initialised
    (tests and demos only; codebooks beyond them stay zero)."""
    import torch
    from transformers import EncodecModel

    config = encodec_config(name, small=small)
    if not calibration:
        calibration = synthetic_calibration_audio(config.sampling_rate, seed=seed)
    bandwidth = bandwidth if bandwidth is not None else codec_spec(name).default_bandwidth
    # one thread: float sums (conv, matmul) vary with the thread count and k-means amplifies the difference,
    # so the same seed must give the same codec whatever the caller's torch threads
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = EncodecModel(config).eval()
        num_codebooks = model.quantizer.get_num_quantizers_for_bandwidth(bandwidth)
        init_codebooks_kmeans(model, calibration, num_codebooks=num_codebooks, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return model
