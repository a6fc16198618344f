"""Acoustic tokens: EnCodec (transformers `EncodecModel`) residual-VQ codes, one [K, T] int16 array per clip.

Weights come from a local `save_pretrained` directory or the Hugging Face cache (offline), or for tests
and the demo from a random-weight codec (cadenza.tokenizers.random_codec); cadenza.tokenizers.
acoustic_loading builds the tokenizer from either. A random codec is marked `random_weights` everywhere
and saved next to the tokens so the same weights can decode them.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.common.sources import SourceError
from cadenza.tokenizers.base import fingerprint_parts
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
