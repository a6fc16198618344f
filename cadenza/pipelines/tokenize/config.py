"""What `cadenza tokenize` is asked to do: the one config the CLI, the stages and the DAGs build."""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.common.config import StageConfig
from cadenza.formats import defaults
from cadenza.tokenizers.encodec_variant_names import DEFAULT_OPTIMIZE


@dataclass
class TokenizeConfig(StageConfig):
    shards: str  # ingest output dir (holds shards/audio-NNNNNN.tar)
    out: str  # tokens dir
    acoustic: str = defaults.ACOUSTIC_CODEC
    bandwidth: float | None = None  # kbps; None: 6.0 (24 kHz) or 2.2 (32 kHz)
    codec_weights: str | None = None  # save_pretrained dir; None: the HF cache
    codec_random_init: bool = False  # tests and demo only: k-means-initialised random codec, saved to OUT/codec
    codec_small: bool = False  # with codec_random_init: narrow widths (tests)
    semantic: str = "mfcc-kmeans"  # or hf:PATH[@LAYER]
    kmeans: str | None = None  # fitted .npz; None: fit on the input into OUT/kmeans.npz
    clusters: int = defaults.CLUSTERS  # when fitting here
    text: str = defaults.TEXT_ENCODER  # or "none"
    prefix: str = "tokens"
    batch_size: int = 8  # most clips per chunk (one Beam element)
    calibration_clips: int = 16  # clips whose encoder outputs initialise a random codec's codebooks
    seed: int = 0
    torch_threads: int = 1  # per worker; run one worker per core
    optimize: str = DEFAULT_OPTIMIZE  # encoder variant: eager | fold | trace | onnx (tokenizers.encodec_variants)
    device: str = "auto"  # auto | cpu | cuda (cadenza.common.devices); each worker resolves auto itself
    codec_batch: int = 0  # clips per EnCodec call; 0: 1 on CPU, CUDA_CODEC_BATCH on CUDA (named in the fingerprint)
    progress: bool = True

    def features(self) -> str:
        if self.semantic == "mfcc-kmeans":
            return "mfcc"
        if self.semantic.startswith("hf:"):
            return self.semantic
        raise ValueError(f"--semantic must be mfcc-kmeans or hf:PATH[@LAYER], got {self.semantic!r}")
