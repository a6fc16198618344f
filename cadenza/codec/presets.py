"""Codec presets: EncodecConfig values plus the training defaults that suit them.

All presets are 24 kHz with Meta's hop (320 samples, 75 frames/s) and 1024-code books, so tokens
have the shape and vocabulary of facebook/encodec_24khz at the chosen bandwidth; `demo` and `small`
are narrower and shallower so that they train on a CPU. `24khz` is Meta's own configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACOUSTIC_NAME = "encodec_24khz"  # the tokenizer family every preset belongs to (rates and vocabulary)


@dataclass(frozen=True)
class CodecPreset:
    config: dict[str, Any]  # EncodecConfig overrides on top of the 24 kHz defaults
    bandwidth: float  # kbps used for tokens; one of config["target_bandwidths"]
    steps: int
    batch_size: int
    segment_seconds: float
    lr: float
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, CodecPreset] = {
    # ~0.7 M parameters, 4 codebooks (3 kbps): minutes on two cores, for the demo and tests; 800 steps, because
    # at 400 the decodes of two clips still correlate up to ~0.8 (README, "Limits of a CPU-trained codec")
    "demo": CodecPreset({"num_filters": 8, "hidden_size": 64, "num_lstm_layers": 1, "target_bandwidths": [1.5, 3.0]},
                        3.0, 800, 8, 0.5, 1e-3, "narrow 24 kHz EnCodec sized for a CPU demo"),
    # ~2.9 M parameters, 8 codebooks (6 kbps): an hour-scale CPU run on a real corpus
    "small": CodecPreset({"num_filters": 16, "hidden_size": 128, "num_lstm_layers": 1,
                          "target_bandwidths": [1.5, 3.0, 6.0]}, 6.0, 20_000, 16, 1.0, 1e-3,
                         "half-width 24 kHz EnCodec"),
    # Meta's facebook/encodec_24khz architecture (~15 M parameters): for a GPU
    "24khz": CodecPreset({}, 6.0, 200_000, 32, 1.0, 3e-4, "facebook/encodec_24khz architecture"),
}


def preset(name: str) -> CodecPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown codec preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def encodec_config(name: str):
    """The EncodecConfig of a preset."""
    from transformers import EncodecConfig

    return EncodecConfig(**preset(name).config)
