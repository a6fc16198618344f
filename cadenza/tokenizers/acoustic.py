"""Acoustic tokens: EnCodec (transformers `EncodecModel`) residual-VQ codes, one [K, T] int16 array per clip.

Weights come from a local `save_pretrained` directory or the Hugging Face cache (offline). For tests and
the demo a random-weight codec can be built instead: a freshly initialised `EncodecModel` has all-zero
codebooks (every code would be 0), so its codebooks are initialised by k-means over encoder outputs on
sample audio, as EnCodec's own training does on its first batch. Such a codec is marked
`random_weights` everywhere and saved next to the tokens so the same weights can decode them.

By default each clip is encoded on its own (batching, like the torch thread count, changes float rounding
and so about 1% of codes; see benchmarks/bench_gpu.py). A batched encode (`encode_batch` > 1, for GPUs) is
a named variant: its layout keeps a clip's codes independent of its batch-mates (cadenza.tokenizers.
encode_batch) and the fingerprint names it. The device is not part of the fingerprint. How the encoder
runs is the `optimize` variant (cadenza.tokenizers.encodec_variants): `trace` (the default) gives eager
fp32's codes; `onnx` (ONNX Runtime, an optional extra) is faster and may change a small share of codes, so
its tokens carry their own fingerprint. Run one single-thread worker per core: codes are reproducible for a
fixed thread count.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadenza import shards
from cadenza.sources import SourceError
from cadenza.tokenizers.base import TokenizerMismatchError, fingerprint_parts
from cadenza.tokenizers.encode_batch import EncodeVariant, batch_plan, pad_step, padded_batch
from cadenza.tokenizers.encodec_variant_names import DEFAULT_OPTIMIZE, EXACT, VARIANTS

CODEC_META = "cadenza_codec.json"  # written next to a random-init codec's save_pretrained files


@dataclass(frozen=True)
class CodecSpec:
    hub_id: str
    default_bandwidth: float
    config: dict[str, Any] = field(default_factory=dict)  # EncodecConfig values (defaults = 24 kHz model)


CODECS: dict[str, CodecSpec] = {
    "encodec_24khz": CodecSpec("facebook/encodec_24khz", 6.0),
    # MusicGen's codec, as in transformers' conversion script for facebook/encodec_32khz
    "encodec_32khz": CodecSpec(
        "facebook/encodec_32khz",
        2.2,
        {
            "upsampling_ratios": [8, 5, 4, 4],
            "target_bandwidths": [2.2],
            "num_filters": 64,
            "sampling_rate": 32_000,
            "codebook_size": 2048,
            "use_causal_conv": False,
            "normalize": False,
            "use_conv_shortcut": False,
        },
    ),
}
# narrow widths for tests/demos only: same rates, codebooks and vocabulary as the real model
SMALL = {"num_filters": 4, "hidden_size": 32, "num_lstm_layers": 1}


class AcousticWeightsError(SourceError):
    """Codec weights are missing or do not fit the requested codec."""


def codec_spec(name: str) -> CodecSpec:
    if name not in CODECS:
        raise ValueError(f"unknown acoustic tokenizer {name!r}; choose one of {sorted(CODECS)}")
    return CODECS[name]


def encodec_config(name: str, *, small: bool = False):
    """The EncodecConfig of the named Meta model (or its narrow variant for tests: `small`)."""
    from transformers import EncodecConfig

    return EncodecConfig(**{**codec_spec(name).config, **(SMALL if small else {})})


class EncodecTokenizer:
    """EnCodec as an `AcousticTokenizer`. Input: mono float32 audio at `sample_rate`."""

    kind = "acoustic"

    def __init__(
        self, name: str, model, *, bandwidth: float | None = None, random_weights: bool = False,
        source: str = "", optimize: str = DEFAULT_OPTIMIZE, device: str = "cpu",
        variant: EncodeVariant | None = None,
    ) -> None:
        import torch

        self.name = name
        cfg = model.config
        self.bandwidth = float(bandwidth if bandwidth is not None else codec_spec(name).default_bandwidth)
        if self.bandwidth not in [float(b) for b in cfg.target_bandwidths]:
            raise ValueError(f"{name}: bandwidth {self.bandwidth} not supported; choose one of {cfg.target_bandwidths}")
        if optimize not in VARIANTS:
            raise ValueError(f"optimize must be one of {VARIANTS}, got {optimize!r}")
        self.sample_rate = int(cfg.sampling_rate)
        self.frame_rate = float(cfg.frame_rate)
        self.num_codebooks = int(model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth))
        self.vocab_size = int(cfg.codebook_size)
        self.random_weights = random_weights
        self.source = source
        self.optimize = optimize  # may be changed later: each variant's encoder is built on first use
        self.variant = variant or EncodeVariant()
        self.device = torch.device(device)
        self.hop = int(np.prod(cfg.upsampling_ratios))
        self.weights_fingerprint = _model_fingerprint(model, self.bandwidth)
        self.model = model.eval().to(self.device)
        self._encoders: dict[tuple[str, str], Any] = {}
        self._torch = torch

    def fingerprint(self) -> str:
        """The weights' fingerprint, naming the optimize variant when its codes are not eager's and the encode
        layout (batch, precision) when it is not one fp32 clip at a time."""
        base = self.weights_fingerprint if self.optimize in EXACT else f"{self.weights_fingerprint}-{self.optimize}"
        if self.variant.is_reference:
            return base
        return fingerprint_parts(base, "encode-variant", self.variant.to_dict())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "sample_rate": self.sample_rate, "frame_rate": self.frame_rate,
            "num_codebooks": self.num_codebooks, "vocab_size": self.vocab_size, "fingerprint": self.fingerprint(),
            "weights_fingerprint": self.weights_fingerprint, "variant": self.optimize,
            "random_weights": self.random_weights, "bandwidth": self.bandwidth, "source": self.source,
            "hub_id": codec_spec(self.name).hub_id, "encode": self.variant.to_dict(),
        }

    def encode(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Clips -> int16 [K, T] codes each: one at a time for the reference variant, else batched."""
        if self.variant.batch == 1:
            return [self.encode_one(audio) for audio in batch]
        clips = [_mono(audio) for audio in batch]
        out: list[np.ndarray] = [np.empty(0)] * len(clips)
        step = pad_step(self.sample_rate, self.hop)
        for idxs, length in batch_plan([c.size for c in clips], self.variant.batch, step):
            x, mask = padded_batch([clips[i] for i in idxs], self.variant.batch, length)
            codes = self._codes(x, mask)  # [K, B, T]
            for row, i in enumerate(idxs):
                out[i] = codes[:, row, : -(-clips[i].size // self.hop)].astype(np.int16)
        return out

    def encode_one(self, audio: np.ndarray) -> np.ndarray:
        """One clip -> int16 [K, T] with T = ceil(len / hop)."""
        if self.variant.batch != 1:
            return self.encode([audio])[0]
        audio = _mono(audio)
        x = np.ascontiguousarray(audio).reshape(1, 1, -1)
        return self._codes(x, np.ones_like(x, dtype=bool))[:, 0].astype(np.int16)

    def _codes(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[B, 1, N] audio and padding mask -> [K, B, T] codes on the CPU."""
        torch = self._torch
        xt = torch.from_numpy(x).to(self.device)
        bf16 = self.variant.precision == "bf16"
        with torch.inference_mode():
            if self.optimize == "eager" and not bf16:
                mt = torch.from_numpy(mask).to(self.device)
                out = self.model.encode(xt, padding_mask=mt, bandwidth=self.bandwidth)
                codes = out.audio_codes[0].transpose(0, 1)  # [B, K, T] -> [K, B, T]
            else:
                codes = self._encoder(bf16)(xt)
        return codes.cpu().numpy()

    def _encoder(self, bf16: bool):
        from cadenza.tokenizers.encodec_variants import variant_encoder

        # bf16 runs the folded copy eagerly (traces and ONNX exports are fp32 only)
        optimize = "fold" if bf16 else self.optimize
        key = (optimize, "bf16" if bf16 else "fp32")
        if key not in self._encoders:
            self._encoders[key] = variant_encoder(self.model, self.bandwidth, optimize, device=self.device,
                                                  bf16=bf16)
        return self._encoders[key]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int [K, T] codes -> float32 mono audio at `sample_rate`."""
        torch = self._torch
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] != self.num_codebooks:
            raise ValueError(f"expected codes [{self.num_codebooks}, T], got shape {codes.shape}")
        if codes.min(initial=0) < 0 or codes.max(initial=0) >= self.vocab_size:
            raise ValueError(f"codes must lie in [0, {self.vocab_size}), got [{codes.min()}, {codes.max()}]")
        c = torch.from_numpy(codes.astype(np.int64)).view(1, 1, *codes.shape).to(self.device)
        with torch.inference_mode():
            audio = self.model.decode(c, [None]).audio_values
        return audio[0, 0].float().cpu().numpy().astype(np.float32)

    def save(self, directory: str | Path) -> None:
        """save_pretrained + a small file that records name, bandwidth, fingerprint and random_weights."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        meta = {"name": self.name, "bandwidth": self.bandwidth, "fingerprint": self.weights_fingerprint,
                "random_weights": self.random_weights}
        (directory / CODEC_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected non-empty mono audio [N], got shape {audio.shape}")
    return audio


def _model_fingerprint(model, bandwidth: float) -> str:
    """Hash of the architecture config, bandwidth and every persistent tensor (weights and codebooks)."""
    from transformers import EncodecConfig

    arch_keys = sorted(EncodecConfig.__annotations__)
    cfg = model.config.to_dict()
    arch = {k: cfg.get(k) for k in arch_keys}
    state = model.state_dict()
    tensors = [x for k in sorted(state) for x in (k, state[k].detach().cpu().float().numpy())]
    return fingerprint_parts("encodec", arch, float(bandwidth), *tensors)


def _fetch_hint(name: str) -> str:
    hub_id = codec_spec(name).hub_id
    return (
        f"fetch it once with `huggingface-cli download {hub_id}` (or in Python: "
        f"`EncodecModel.from_pretrained('{hub_id}')`), or pass --codec-weights DIR (a save_pretrained "
        f"directory); --codec-random-init is for tests and demos only"
    )


def _load_pretrained(name: str, weights: str | Path | None):
    from transformers import EncodecModel

    spec = codec_spec(name)
    if weights is not None:
        path = Path(weights)
        if not (path / "config.json").is_file():
            raise AcousticWeightsError(f"--codec-weights {path}: no config.json there; {_fetch_hint(name)}")
        model = EncodecModel.from_pretrained(path, local_files_only=True)
    else:
        try:
            model = EncodecModel.from_pretrained(spec.hub_id, local_files_only=True)
        except OSError as exc:
            raise AcousticWeightsError(
                f"EnCodec weights {spec.hub_id} are not in the Hugging Face cache; {_fetch_hint(name)}"
            ) from exc
    expected = encodec_config(name)
    if model.config.sampling_rate != expected.sampling_rate or model.config.frame_rate != expected.frame_rate:
        raise AcousticWeightsError(
            f"weights {weights or spec.hub_id} are a {model.config.sampling_rate} Hz / {model.config.frame_rate} Hz "
            f"codec, not {name} ({expected.sampling_rate} Hz / {expected.frame_rate} Hz)"
        )
    return model


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


def load_acoustic(
    name: str = "encodec_24khz", *, weights: str | Path | None = None, random_init: bool = False,
    bandwidth: float | None = None, calibration: list[np.ndarray] | None = None, small: bool = False,
    seed: int = 0, optimize: str = DEFAULT_OPTIMIZE, device: str = "cpu", variant: EncodeVariant | None = None,
) -> EncodecTokenizer:
    """The named EnCodec tokenizer.

    weights: a save_pretrained directory; else the HF cache (offline). random_init: a seeded random codec
    whose codebooks are k-means-fitted on `calibration` clips (synthetic audio when none); `small` narrows
    its widths (tests). bandwidth defaults to 6.0 kbps (24 kHz, 8 codebooks) or 2.2 (32 kHz, 4 codebooks).
    device: "cpu" or "cuda" (resolved; see cadenza.devices). variant: batched / bf16 encode (default: the
    reference, one clip at a time in fp32).
    """
    codec_spec(name)
    if random_init and weights is not None:
        raise ValueError("pass either weights or random_init, not both")
    if random_init:
        model = build_random_codec(name, bandwidth=bandwidth, calibration=calibration, small=small, seed=seed)
        return EncodecTokenizer(name, model, bandwidth=bandwidth, random_weights=True, source="random-init",
                                optimize=optimize, device=device, variant=variant)
    model = _load_pretrained(name, weights)
    random_weights = False
    if weights is not None and (meta_path := Path(weights) / CODEC_META).is_file():
        meta = json.loads(meta_path.read_text())
        random_weights = bool(meta.get("random_weights", False))
        # a codec cadenza trained or built records the bandwidth its tokens use
        bandwidth = bandwidth if bandwidth is not None else meta.get("bandwidth")
    source = str(weights) if weights is not None else f"hf-cache:{codec_spec(name).hub_id}"
    return EncodecTokenizer(name, model, bandwidth=bandwidth, random_weights=random_weights, source=source,
                            optimize=optimize, device=device, variant=variant)


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def save_codec(tokenizer: EncodecTokenizer, directory: str) -> None:
    """Save to a local path or an fsspec URL (written locally first, then copied)."""
    fs, path = shards._fs(directory)
    if _is_local(fs):
        tokenizer.save(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        fs.put(tmp + "/", path, recursive=True)


def _local_codec_dir(directory: str, stack: list[tempfile.TemporaryDirectory]) -> str:
    fs, path = shards._fs(directory)
    if _is_local(fs):
        return path
    tmp = tempfile.TemporaryDirectory()
    stack.append(tmp)
    fs.get(path + "/", tmp.name, recursive=True)
    return tmp.name


def _is_codec_dir(path: str) -> bool:
    return bool(path) and not path.startswith("hf-cache:") and (Path(path) / "config.json").is_file()


def load_acoustic_for_tokens(
    tokens_dir: str, *, weights: str | Path | None = None, random_init: bool = False, optimize: str | None = None,
) -> EncodecTokenizer:
    """The acoustic tokenizer that made TOKENS: its saved random codec, else `weights`, else the codec dir
    tokenize loaded (when it still exists), else the HF cache.

    optimize: the encoder variant; None: the one that made the tokens (its fingerprint is the manifest's).
    Raises TokenizerMismatchError if the loaded weights' fingerprint differs from the manifest's.
    """
    manifest_path = shards.join(tokens_dir, "manifest.json")
    if not shards.exists(manifest_path):
        raise SourceError(f"{tokens_dir}: no manifest.json (not a finished `cadenza tokenize` output)")
    manifest = shards.read_json(manifest_path)
    desc = (manifest.get("tokenizers") or {}).get("acoustic") or {}
    if not desc:
        raise SourceError(f"{manifest_path}: names no acoustic tokenizer")
    optimize = optimize or desc.get("variant") or DEFAULT_OPTIMIZE
    made_random = bool(desc.get("random_weights")) or bool(manifest.get("random_weights"))
    variant = EncodeVariant.from_describe(desc)  # part of the fingerprint the tokens were made with
    if random_init and not made_random:
        raise TokenizerMismatchError(f"{tokens_dir} was made with real codec weights, not a random-init codec")
    stack: list[tempfile.TemporaryDirectory] = []
    try:
        if made_random:
            if weights is not None:
                raise TokenizerMismatchError(
                    f"{tokens_dir} was made with a random-init codec (saved in its codec dir); do not pass weights"
                )
            codec_dir = shards.join(tokens_dir, manifest.get("codec_dir") or "codec")
            if not shards.exists(shards.join(codec_dir, "config.json")):
                raise SourceError(f"{tokens_dir}: random-init tokens but no saved codec at {codec_dir}")
            tok = load_acoustic(desc["name"], weights=_local_codec_dir(codec_dir, stack),
                                bandwidth=desc.get("bandwidth"), optimize=optimize, variant=variant)
        else:
            if weights is None and _is_codec_dir(desc.get("source", "")):
                weights = desc["source"]  # the codec dir tokenize loaded (e.g. `cadenza codec train` output)
            tok = load_acoustic(desc["name"], weights=weights, bandwidth=desc.get("bandwidth"), optimize=optimize,
                                variant=variant)
    finally:
        for tmp in stack:
            tmp.cleanup()
    if tok.fingerprint() != desc.get("fingerprint"):
        raise TokenizerMismatchError(
            f"acoustic tokenizer mismatch for {tokens_dir}: manifest has {desc.get('name')} fingerprint "
            f"{desc.get('fingerprint')}, loaded weights ({tok.source}) give {tok.fingerprint()}"
        )
    return tok
