"""Fixing the tokenizers before any token shard is written: fit or locate the semantic k-means, build or
locate the codec, record their fingerprints in OUT/tokenizers.json, and refuse tokens made by others.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cadenza.common.sources import SourceError
from cadenza.formats import defaults, storage
from cadenza.formats.audio import input_shards, load_clips, select_clips
from cadenza.pipelines.beam import ProgressBar
from cadenza.pipelines.tokenize.config import TokenizeConfig
from cadenza.tokenizers.base import TokenizerMismatchError

LOCK_FILE = "tokenizers.json"
# clips per EnCodec call on a GPU unless --codec-batch says otherwise; on CPU batching is no faster
CUDA_CODEC_BATCH = 16
KMEANS_FILE = "kmeans.npz"
CODEC_DIR = "codec"


def fit_kmeans(
    shards_dir: str, out: str, *, clusters: int = defaults.CLUSTERS, features: str = "mfcc", max_clips: int = 1000,
    frames_per_clip: int = 100, seed: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """Fit semantic k-means on frames sampled across the audio shards; save `.npz` to `out`. Returns its config."""
    from cadenza.tokenizers.semantic import FeatureSpec, FitSettings, fit_kmeans_on_frames, make_features

    feats = make_features(FeatureSpec(features))
    selection = select_clips([p for _, p in input_shards(shards_dir)], max_clips)
    rng = np.random.default_rng(seed)
    chunks = []
    with ProgressBar(progress, "features for k-means", len(selection)) as advance:
        for _key, audio, sr in load_clips(selection):
            frames = feats(audio, sr)
            take = np.sort(rng.choice(len(frames), min(frames_per_clip, len(frames)), replace=False))
            chunks.append(frames[take])
            advance()
    if not chunks:
        raise SourceError(f"{shards_dir}: no readable clips to fit k-means on")
    model = fit_kmeans_on_frames(np.concatenate(chunks), feats.describe(), FitSettings(clusters=clusters, seed=seed))
    model.config.update({"clips": len(chunks), "source": shards_dir})
    model.save(out)
    return {**model.config, "fingerprint": model.fingerprint(), "path": out}


# ---------------------------------------------------------------- tokenizers


def prepare_tokenizers(config: TokenizeConfig, sources: list[str]) -> dict[str, Any]:
    """Fix the tokenizers before any shard: fit/locate k-means, build/locate the codec. Returns their
    describe()s plus where workers load them from."""
    from cadenza.common.devices import resolve_device
    from cadenza.tokenizers.acoustic import CODEC_META
    from cadenza.tokenizers.acoustic_loading import load_acoustic, save_codec
    from cadenza.tokenizers.encode_batch import EncodeVariant
    from cadenza.tokenizers.semantic import KMeansModel, SemanticTokenizer

    device = resolve_device(config.device)
    variant = EncodeVariant(batch=codec_batch(config, device))

    kmeans_path = config.kmeans or storage.join(config.out, KMEANS_FILE)
    if not storage.exists(kmeans_path):
        if config.kmeans:
            raise SourceError(f"--kmeans {config.kmeans}: no such file")
        fit_kmeans(config.shards, kmeans_path, clusters=config.clusters, features=config.features(),
                   seed=config.seed, progress=config.progress)
    semantic = SemanticTokenizer(KMeansModel.load(kmeans_path))
    wanted = config.features()
    got = semantic.kmeans.config["features_describe"]["features"]
    if (wanted == "mfcc") != (got == "mfcc"):
        raise TokenizerMismatchError(f"{kmeans_path} was fitted on {got} features, but --semantic is {config.semantic}")

    codec_dir = storage.join(config.out, CODEC_DIR)
    weights = config.codec_weights
    if config.codec_random_init:
        # resume: same weights as before. The meta file is written last: a codec dir without it is a
        # save cut short by a kill, and is made again (seeded, so with the same weights)
        if storage.exists(storage.join(codec_dir, CODEC_META)):
            acoustic = _load_saved_codec(config, codec_dir, device, variant)
        else:
            calibration = _calibration_audio(sources, config)
            acoustic = load_acoustic(config.acoustic, random_init=True, bandwidth=config.bandwidth,
                                     calibration=calibration, small=config.codec_small, seed=config.seed,
                                     optimize=config.optimize, device=device, variant=variant)
            save_codec(acoustic, codec_dir)
        weights = codec_dir
    else:
        acoustic = load_acoustic(config.acoustic, weights=weights, bandwidth=config.bandwidth,
                                 optimize=config.optimize, device=device, variant=variant)
    text = None
    if config.text != "none":
        from cadenza.tokenizers.text import load_text

        text = load_text(config.text)
    plan = {
        "semantic": semantic.describe(), "acoustic": acoustic.describe(), "text": text and text.describe(),
        "kmeans_path": kmeans_path, "codec_weights": weights, "torch_threads": config.torch_threads,
        "optimize": config.optimize, "device": config.device, "launcher_device": device,
    }
    from cadenza.pipelines.tokenize import dofns

    cached = {dofns.semantic_key(plan): semantic, dofns.acoustic_key(plan): acoustic}
    if text is not None:
        cached[dofns.text_key(plan)] = text
    dofns._LOADED.update(cached)
    return plan


def codec_batch(config: TokenizeConfig, device: str) -> int:
    """Clips per EnCodec call: --codec-batch, else 1 on CPU and CUDA_CODEC_BATCH on CUDA."""
    if config.codec_batch:
        return config.codec_batch
    return CUDA_CODEC_BATCH if device == "cuda" else 1


def _load_saved_codec(config: TokenizeConfig, codec_dir: str, device: str, variant):
    from cadenza.tokenizers.acoustic_loading import load_acoustic, local_codec_dir

    stack: list = []
    try:
        return load_acoustic(config.acoustic, weights=local_codec_dir(codec_dir, stack), bandwidth=config.bandwidth,
                             optimize=config.optimize, device=device, variant=variant)
    finally:
        for tmp in stack:
            tmp.cleanup()


def _calibration_audio(sources: list[str], config: TokenizeConfig) -> list[np.ndarray]:
    import librosa

    from cadenza.tokenizers.acoustic import encodec_config

    rate = encodec_config(config.acoustic).sampling_rate
    clips = []
    for _key, audio, sr in load_clips(select_clips(sources, config.calibration_clips)):
        clips.append(audio if sr == rate else librosa.resample(audio, orig_sr=sr, target_sr=rate))
    return clips


def check_lock(out: str, tokenizers: dict[str, Any]) -> None:
    """First run: record the tokenizers. Later runs into the same dir must use the same ones."""
    path = storage.join(out, LOCK_FILE)
    fps = {k: (tokenizers[k] or {}).get("fingerprint") for k in ("semantic", "acoustic", "text")}
    if storage.exists(path):
        before = storage.read_json(path)
        old = {k: (before.get(k) or {}).get("fingerprint") for k in ("semantic", "acoustic", "text")}
        if old != fps:
            diff = ", ".join(f"{k}: {old[k]} -> {fps[k]}" for k in fps if old[k] != fps[k])
            raise TokenizerMismatchError(
                f"{out} already holds tokens made with other tokenizers ({diff}); use a new --out directory"
            )
        return
    storage.write_json_atomic(path, {k: tokenizers[k] for k in ("semantic", "acoustic", "text")})


def check_manifest_tokenizers(manifest: dict[str, Any], expected: dict[str, Any], *, where: str = "") -> None:
    """Raise TokenizerMismatchError if `manifest` names tokenizers with other fingerprints than `expected`
    ({"semantic": describe or fingerprint, ...}); what a trainer calls before mixing token dirs."""
    got = manifest.get("tokenizers") or {}
    problems = []
    for kind, want in expected.items():
        want_fp = want.get("fingerprint") if isinstance(want, dict) else want
        have_fp = (got.get(kind) or {}).get("fingerprint")
        if want_fp != have_fp:
            problems.append(f"{kind}: {have_fp} != {want_fp}")
    if problems:
        raise TokenizerMismatchError(f"tokenizer mismatch {where}: " + "; ".join(problems))
