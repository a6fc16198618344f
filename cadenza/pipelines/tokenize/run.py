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

from collections import Counter
from typing import Any

from cadenza.formats import shards, storage
from cadenza.formats.audio import input_shards
from cadenza.formats.index import write_samples_index
from cadenza.pipelines.beam import ProgressBar, ShardWatcher
from cadenza.pipelines.tokenize.config import TokenizeConfig
from cadenza.pipelines.tokenize.setup import CODEC_DIR, KMEANS_FILE, check_lock, prepare_tokenizers

# ---------------------------------------------------------------- the pipeline


def run_tokenize(config: TokenizeConfig, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Tokenize every complete audio shard of `config.shards` into `config.out`; returns the manifest.

    beam_args: Beam pipeline options (--runner, --direct_num_workers, ...); DirectRunner by default.
    """
    config = _with_absolute_paths(config)
    sources = input_shards(config.shards)
    shards.migrate_layout(storage.join(config.out, "shards"))  # an output dir an older version wrote
    for sub in ("shards", "failures", shards.STATS_DIR, shards.SAMPLES_DIR):
        storage.makedirs(storage.join(config.out, sub))
        storage.remove_partial_writes(storage.join(config.out, sub))  # what a killed run left
    tokenizers = prepare_tokenizers(config, [p for _, p in sources])
    check_lock(config.out, tokenizers)
    pending = [
        (i, p) for i, p in sources
        if not shards.is_complete(storage.join(config.out, "shards", shards.shard_name(config.prefix, i)))
    ]
    if pending:
        _run_beam(config, tokenizers, pending, dict(sources), beam_args or [])
    return write_manifest(config, tokenizers, sources)


def _with_absolute_paths(config: TokenizeConfig) -> TokenizeConfig:
    """Workers open these paths; on a distributed runner they do not share the launcher's working directory."""
    from dataclasses import replace

    return replace(
        config, shards=storage.absolute(config.shards), out=storage.absolute(config.out),
        kmeans=config.kmeans and storage.absolute(config.kmeans),
        codec_weights=config.codec_weights and storage.absolute(config.codec_weights),
    )


def _run_beam(config, tokenizers, pending, sources, beam_args) -> None:
    import apache_beam as beam

    from cadenza.pipelines.beam import make_pipeline, pipeline_options, run_to_completion
    from cadenza.pipelines.tokenize.dofns import ReadAudioShard, TokenizeBundle, WriteTokenShard

    plan = tokenizers
    # one Dask partition per shard; locally, one process whose torch threads do the work
    options = pipeline_options(beam_args, parallel_tasks=len(pending), local_processes=False)
    out_names = [storage.join(config.out, "shards", shards.shard_name(config.prefix, i)) for i, _ in pending]
    with ProgressBar(config.progress, "token shards", len(pending)) as advance, ShardWatcher(out_names, advance):
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
        tar = storage.join(config.out, "shards", shards.shard_name(config.prefix, i))
        if not shards.is_complete(tar):
            missing.append(tar.rsplit("/", 1)[-1])
            continue
        stats = shards.read_stats(tar)
        (names if storage.exists(tar) else no_samples).append(stats["shard"])  # no tar: every clip failed
        totals.update({"samples": stats["samples"], "failures": stats["failures"]})
        totals["audio_seconds"] += stats["audio_seconds"]
        categories.update(stats.get("failures_by_category", {}))
    audio_manifest_path = storage.join(config.shards, "manifest.json")
    audio_manifest = storage.read_json(audio_manifest_path) if storage.exists(audio_manifest_path) else {}
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
    storage.write_json_atomic(storage.join(config.out, "manifest.json"), manifest)
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
