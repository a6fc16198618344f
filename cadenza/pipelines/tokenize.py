"""Audio shards -> token shards (semantic k-means ids, EnCodec codes, MiniLM caption embeddings), on Beam.

Input shard `audio-NNNNNN.tar` becomes `tokens-NNNNNN.tar` (same index, same keys), so a rerun redoes
exactly the shards without a completion marker (resume) and every output depends only on its input shard
and the tokenizers (deterministic). Clips travel in chunks of at most `batch_size` read from one shard,
so per-element overhead is amortised; a clip's tokens never depend on its chunk (by default each clip is
encoded on its own; a batched EnCodec encode, the default on CUDA, pads each batch to a shape fixed by the
clip alone).

The pipeline is one chain (Create, Reshuffle, ParDo, GroupByKey, ParDo) with one output per step and
nothing emitted from finish_bundle, so it is correct on any runner that honours the Beam model and also
on Beam's DaskRunner (2.77), which (a) drops what a DoFn emits in finish_bundle, as BatchElements does
for its last batch of a bundle, (b) hands every output of a multi-output ParDo to each consumer, and
(c) only computes the branch that ends in the last transform applied.
Every audio sample ends in a token shard or in `failures/{prefix}-NNNNNN.jsonl` with its reason.

The tokenizers are fixed before any shard is written (`tokenizers.json`); a rerun with different
tokenizers into the same directory is refused instead of mixing tokens.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cadenza import shards
from cadenza.config import from_dict_strict
from cadenza.shard_index import write_samples_index
from cadenza.sources import SourceError
from cadenza.tokenizers.base import TokenizerMismatchError
from cadenza.tokenizers.encodec_variant_names import DEFAULT_OPTIMIZE

log = logging.getLogger(__name__)

LOCK_FILE = "tokenizers.json"
# clips per EnCodec call on a GPU unless --codec-batch says otherwise; on CPU batching is no faster
CUDA_CODEC_BATCH = 16
KMEANS_FILE = "kmeans.npz"
CODEC_DIR = "codec"


@dataclass
class TokenizeConfig:
    shards: str  # ingest output dir (holds shards/audio-NNNNNN.tar)
    out: str  # tokens dir
    acoustic: str = "encodec_24khz"
    bandwidth: float | None = None  # kbps; None: 6.0 (24 kHz) or 2.2 (32 kHz)
    codec_weights: str | None = None  # save_pretrained dir; None: the HF cache
    codec_random_init: bool = False  # tests and demo only: k-means-initialised random codec, saved to OUT/codec
    codec_small: bool = False  # with codec_random_init: narrow widths (tests)
    semantic: str = "mfcc-kmeans"  # or hf:PATH[@LAYER]
    kmeans: str | None = None  # fitted .npz; None: fit on the input into OUT/kmeans.npz
    clusters: int = 1024  # when fitting here
    text: str = "minilm"  # or "none"
    prefix: str = "tokens"
    batch_size: int = 8  # most clips per chunk (one Beam element)
    calibration_clips: int = 16  # clips whose encoder outputs initialise a random codec's codebooks
    seed: int = 0
    torch_threads: int = 1  # per worker; run one worker per core
    optimize: str = DEFAULT_OPTIMIZE  # encoder variant: eager | fold | trace | onnx (tokenizers.encodec_variants)
    device: str = "auto"  # auto | cpu | cuda (cadenza.devices); each worker resolves auto itself
    codec_batch: int = 0  # clips per EnCodec call; 0: 1 on CPU, CUDA_CODEC_BATCH on CUDA (named in the fingerprint)
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizeConfig:
        return from_dict_strict(cls, d)

    def features(self) -> str:
        if self.semantic == "mfcc-kmeans":
            return "mfcc"
        if self.semantic.startswith("hf:"):
            return self.semantic
        raise ValueError(f"--semantic must be mfcc-kmeans or hf:PATH[@LAYER], got {self.semantic!r}")


# ---------------------------------------------------------------- reading audio shards


def input_shards(audio_dir: str) -> list[tuple[int, str]]:
    """(index, path) of every complete audio shard, index taken from its name."""
    paths = shards.list_shards(shards.join(audio_dir, "shards"))
    if not paths:
        raise SourceError(f"{audio_dir}: no complete audio shards under {shards.join(audio_dir, 'shards')}")
    out = []
    for i, path in enumerate(paths):
        m = re.search(r"-(\d+)\.tar$", path)
        out.append((int(m.group(1)) if m else i, path))
    if len({i for i, _ in out}) != len(out):
        raise SourceError(f"{audio_dir}: shard names do not give distinct indices")
    return out


def decode_audio(sample: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The sample's flac as mono float32 and its rate."""
    import soundfile as sf

    if "flac" not in sample:
        raise KeyError("sample has no flac member")
    audio, sr = sf.read(io.BytesIO(sample["flac"]), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr)


def select_clips(paths: list[str], count: int) -> list[tuple[str, str]]:
    """`count` (shard, key) pairs spread over all shards: the keys with the smallest hashes (deterministic)."""
    import hashlib

    keys: list[tuple[str, str, str]] = []
    for path in paths:
        seen: set[str] = set()
        try:
            seen.update(s["__key__"] for s in shards.iter_tar_samples(path))
        except (ValueError, tarfile.TarError, OSError) as exc:
            # the tokenize pass records the broken shard; fitting goes on with what could be read
            log.warning("k-means/calibration clips: rest of shard unreadable: %s", exc)
        keys += [(hashlib.sha256(k.encode()).hexdigest(), path, k) for k in seen]
    return [(path, key) for _, path, key in sorted(keys)[:count]]


def load_clips(selection: list[tuple[str, str]]):
    """Yield (key, audio, sr) for the selected clips, shard by shard; unreadable clips are skipped."""
    by_shard: dict[str, set[str]] = {}
    for path, key in selection:
        by_shard.setdefault(path, set()).add(key)
    for path in sorted(by_shard):
        try:
            for sample in shards.iter_tar_samples(path):
                if sample["__key__"] not in by_shard[path]:
                    continue
                try:
                    audio, sr = decode_audio(sample)
                except Exception:  # noqa: BLE001,S112 (a bad clip is reported by the tokenize pass, not here)
                    continue
                yield sample["__key__"], audio, sr
        except (ValueError, tarfile.TarError, OSError) as exc:  # what came before the break is kept
            log.warning("k-means/calibration clips: rest of shard unreadable: %s", exc)


# ---------------------------------------------------------------- k-means fitting


def fit_kmeans(
    shards_dir: str, out: str, *, clusters: int = 1024, features: str = "mfcc", max_clips: int = 1000,
    frames_per_clip: int = 100, seed: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """Fit semantic k-means on frames sampled across the audio shards; save `.npz` to `out`. Returns its config."""
    from cadenza.tokenizers.semantic import FeatureSpec, FitSettings, fit_kmeans_on_frames, make_features

    feats = make_features(FeatureSpec(features))
    selection = select_clips([p for _, p in input_shards(shards_dir)], max_clips)
    rng = np.random.default_rng(seed)
    chunks = []
    with _progress(progress, "features for k-means", len(selection)) as advance:
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
    from cadenza.devices import resolve_device
    from cadenza.tokenizers.acoustic import CODEC_META
    from cadenza.tokenizers.acoustic_loading import load_acoustic, save_codec
    from cadenza.tokenizers.encode_batch import EncodeVariant
    from cadenza.tokenizers.semantic import KMeansModel, SemanticTokenizer

    device = resolve_device(config.device)
    variant = EncodeVariant(batch=codec_batch(config, device))

    kmeans_path = config.kmeans or shards.join(config.out, KMEANS_FILE)
    if not shards.exists(kmeans_path):
        if config.kmeans:
            raise SourceError(f"--kmeans {config.kmeans}: no such file")
        fit_kmeans(config.shards, kmeans_path, clusters=config.clusters, features=config.features(),
                   seed=config.seed, progress=config.progress)
    semantic = SemanticTokenizer(KMeansModel.load(kmeans_path))
    wanted = config.features()
    got = semantic.kmeans.config["features_describe"]["features"]
    if (wanted == "mfcc") != (got == "mfcc"):
        raise TokenizerMismatchError(f"{kmeans_path} was fitted on {got} features, but --semantic is {config.semantic}")

    codec_dir = shards.join(config.out, CODEC_DIR)
    weights = config.codec_weights
    if config.codec_random_init:
        # resume: same weights as before. The meta file is written last: a codec dir without it is a
        # save cut short by a kill, and is made again (seeded, so with the same weights)
        if shards.exists(shards.join(codec_dir, CODEC_META)):
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
    from cadenza.pipelines import tokenize_dofns

    cached = {tokenize_dofns.semantic_key(plan): semantic, tokenize_dofns.acoustic_key(plan): acoustic}
    if text is not None:
        cached[tokenize_dofns.text_key(plan)] = text
    tokenize_dofns._LOADED.update(cached)
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
    path = shards.join(out, LOCK_FILE)
    fps = {k: (tokenizers[k] or {}).get("fingerprint") for k in ("semantic", "acoustic", "text")}
    if shards.exists(path):
        before = shards.read_json(path)
        old = {k: (before.get(k) or {}).get("fingerprint") for k in ("semantic", "acoustic", "text")}
        if old != fps:
            diff = ", ".join(f"{k}: {old[k]} -> {fps[k]}" for k in fps if old[k] != fps[k])
            raise TokenizerMismatchError(
                f"{out} already holds tokens made with other tokenizers ({diff}); use a new --out directory"
            )
        return
    shards.write_json_atomic(path, {k: tokenizers[k] for k in ("semantic", "acoustic", "text")})


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


# ---------------------------------------------------------------- the pipeline


def run_tokenize(config: TokenizeConfig, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Tokenize every complete audio shard of `config.shards` into `config.out`; returns the manifest.

    beam_args: Beam pipeline options (--runner, --direct_num_workers, ...); DirectRunner by default.
    """
    config = _with_absolute_paths(config)
    sources = input_shards(config.shards)
    shards.migrate_layout(shards.join(config.out, "shards"))  # an output dir an older version wrote
    for sub in ("shards", "failures", shards.STATS_DIR, shards.SAMPLES_DIR):
        shards.makedirs(shards.join(config.out, sub))
        shards.remove_partial_writes(shards.join(config.out, sub))  # what a killed run left
    tokenizers = prepare_tokenizers(config, [p for _, p in sources])
    check_lock(config.out, tokenizers)
    pending = [
        (i, p) for i, p in sources
        if not shards.is_complete(shards.join(config.out, "shards", shards.shard_name(config.prefix, i)))
    ]
    if pending:
        _run_beam(config, tokenizers, pending, dict(sources), beam_args or [])
    return write_manifest(config, tokenizers, sources)


def _with_absolute_paths(config: TokenizeConfig) -> TokenizeConfig:
    """Workers open these paths; on a distributed runner they do not share the launcher's working directory."""
    from dataclasses import replace

    return replace(
        config, shards=shards.absolute(config.shards), out=shards.absolute(config.out),
        kmeans=config.kmeans and shards.absolute(config.kmeans),
        codec_weights=config.codec_weights and shards.absolute(config.codec_weights),
    )


def _run_beam(config, tokenizers, pending, sources, beam_args) -> None:
    import apache_beam as beam

    from cadenza.pipelines.runner import make_pipeline, pipeline_options, run_to_completion
    from cadenza.pipelines.tokenize_dofns import ReadAudioShard, TokenizeBundle, WriteTokenShard

    plan = tokenizers
    # one Dask partition per shard; locally, one process whose torch threads do the work
    options = pipeline_options(beam_args, parallel_tasks=len(pending), local_processes=False)
    out_names = [shards.join(config.out, "shards", shards.shard_name(config.prefix, i)) for i, _ in pending]
    with _progress(config.progress, "token shards", len(pending)) as advance, _ShardWatcher(out_names, advance):
        p = make_pipeline(options)
        # a chunk holds at least one full EnCodec batch (a short one is padded with silent rows)
        chunk = max(config.batch_size, plan["acoustic"]["encode"]["batch"])
        _ = (
            p
            | "Shards" >> beam.Create(pending)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadAudioShard(chunk))
            | "Tokenize" >> beam.ParDo(TokenizeBundle(plan, config.prefix))
            | "ByShard" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteTokenShard(config.out, config.prefix, sources))
        )
        run_to_completion(p)


def write_manifest(config: TokenizeConfig, tokenizers: dict[str, Any], sources: list[tuple[int, str]]) -> dict:
    """Summarise every output shard (complete or not) and failure into OUT/manifest.json."""
    names, missing, no_samples, totals, categories = [], [], [], Counter(), Counter()
    for i, _path in sources:
        tar = shards.join(config.out, "shards", shards.shard_name(config.prefix, i))
        if not shards.is_complete(tar):
            missing.append(tar.rsplit("/", 1)[-1])
            continue
        stats = shards.read_stats(tar)
        (names if shards.exists(tar) else no_samples).append(stats["shard"])  # no tar: every clip failed
        totals.update({"samples": stats["samples"], "failures": stats["failures"]})
        totals["audio_seconds"] += stats["audio_seconds"]
        categories.update(stats.get("failures_by_category", {}))
    audio_manifest_path = shards.join(config.shards, "manifest.json")
    audio_manifest = shards.read_json(audio_manifest_path) if shards.exists(audio_manifest_path) else {}
    random = bool(tokenizers["acoustic"].get("random_weights"))
    manifest = {
        "kind": "tokens",
        "tokenizers": {k: tokenizers[k] for k in ("semantic", "acoustic", "text")},
        "random_weights": random,
        "source": config.shards,
        "source_clips": audio_manifest.get("clips_written"),
        "shards": names,
        "incomplete_shards": missing,
        "shards_without_samples": no_samples,
        "clips_written": totals["samples"],
        "failures": totals["failures"],
        "failures_by_category": dict(categories),
        "audio_seconds": round(totals["audio_seconds"], 3),
        "kmeans": KMEANS_FILE if not config.kmeans else config.kmeans,
        "config": config.to_dict(),
        "device": tokenizers["launcher_device"],  # where the launcher ran the codec; not in any fingerprint
        "versions": _versions(),
    }
    if random:
        manifest["codec_dir"] = CODEC_DIR
    shards.write_json_atomic(shards.join(config.out, "manifest.json"), manifest)
    write_samples_index(config.out)
    return manifest


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("cadenza", "torch", "transformers", "apache-beam", "librosa", "scikit-learn", "numpy", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


class _progress:
    """A rich progress bar (or nothing); the context value is an `advance()` callable."""

    def __init__(self, enabled: bool, what: str, total: int) -> None:
        self.enabled, self.what, self.total = enabled, what, total

    def __enter__(self):
        if not self.enabled:
            return lambda n=1: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(transient=False, console=Console(stderr=True))  # stdout carries results only
        self.bar.start()
        task = self.bar.add_task(self.what, total=self.total)
        return lambda n=1: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.stop()


class _ShardWatcher:
    """Polls for completion markers while the runner works, whichever runner and wherever it runs."""

    def __init__(self, tars: list[str], advance, interval_s: float = 1.0) -> None:
        import threading

        self.tars, self.advance, self.interval_s = list(tars), advance, interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while self.tars and not self.stop.wait(self.interval_s):
            done = [t for t in self.tars if shards.exists(shards.stats_path(t))]
            for t in done:
                self.tars.remove(t)
            if done:
                self.advance(len(done))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._loop_once()

    def _loop_once(self) -> None:
        done = [t for t in self.tars if shards.exists(shards.stats_path(t))]
        if done:
            self.advance(len(done))
