"""`cadenza tokenize`: audio shards -> token shards; `cadenza tokenize fit-kmeans`: the semantic k-means."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from cadenza.cli import checks
from cadenza.formats import defaults
from cadenza.tokenizers.encodec_variant_names import DEFAULT_OPTIMIZE, VARIANTS


class _TokenizeGroup(TyperGroup):
    """`tokenize` runs itself unless a subcommand is named; anything it does not know (Beam pipeline
    options such as --runner) is passed to the pipeline instead of being taken for a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            return super().parse_args(ctx, args)
        return click.Command.parse_args(self, ctx, args)


tokenize_app = typer.Typer(
    cls=_TokenizeGroup,
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=(
        "Precompute training tokens from audio shards: semantic k-means ids, EnCodec codes and MiniLM caption "
        "embeddings, into TOKENS/shards/tokens-NNNNNN.tar with a manifest naming every tokenizer.\n\n"
        "Runs on Apache Beam (DirectRunner by default); unknown options are Beam pipeline options, e.g. "
        "--direct_num_workers 2 --direct_running_mode multi_processing. Rerunning resumes: finished shards "
        "are kept. Without --kmeans a k-means is fitted on the input first (TOKENS/kmeans.npz)."
    ),
)


@tokenize_app.callback()
def tokenize(
    ctx: typer.Context,
    shards: str = typer.Option(None, "--shards", help="Ingest output dir (holds shards/audio-*.tar)."),
    out: str = typer.Option(None, "--out", help="Tokens output dir (local path or fsspec URL)."),
    acoustic: str = typer.Option(defaults.ACOUSTIC_CODEC, help="encodec_24khz (8 codebooks at 6 kbps, 75 Hz) or "
                                 "encodec_32khz (MusicGen's, 4 codebooks, 50 Hz)."),
    bandwidth: float = typer.Option(None, help="Codec bandwidth in kbps (default 6.0 at 24 kHz, 2.2 at 32 kHz)."),
    codec_weights: Path = typer.Option(None, help="A local save_pretrained EnCodec dir; default: the HF cache."),
    codec_random_init: bool = typer.Option(False, help="Tests/demo only: random codec with k-means codebooks; "
                                           "marks everything random_weights and saves it to TOKENS/codec."),
    codec_small: bool = typer.Option(False, hidden=True, help="With --codec-random-init: narrow widths (tests)."),
    semantic: str = typer.Option("mfcc-kmeans", help="mfcc-kmeans, or hf:PATH\\[@LAYER] (local transformers model)."),
    kmeans: str = typer.Option(None, help="A fitted k-means .npz (see fit-kmeans)."),
    clusters: int = typer.Option(defaults.CLUSTERS, help="k-means clusters when fitting here (no --kmeans)."),
    text: str = typer.Option(defaults.TEXT_ENCODER, help="Caption embeddings: minilm or none."),
    batch_size: int = typer.Option(8, help="Most clips per Beam bundle (each clip is still encoded alone)."),
    torch_threads: int = typer.Option(1, help="Torch threads per worker; run one worker per core."),
    optimize: str = typer.Option(DEFAULT_OPTIMIZE, help="EnCodec encoder variant: eager, fold (weight norm folded) and "
                                 "trace (fold + frozen TorchScript) give eager's codes; onnx (ONNX Runtime, "
                                 "pip install 'cadenza[onnx]', CPU only) is ~1.5x faster, may change a small "
                                 "share of codes and gives the tokens their own fingerprint."),
    device: str = typer.Option("auto", help="Where EnCodec runs: auto (CUDA when present), cpu or cuda."),
    codec_batch: int = typer.Option(0, help="Clips per EnCodec call, padded to a shape fixed by each clip "
                                    "(0: 1 on CPU, 16 on CUDA). Batched codes are a variant named in the "
                                    "fingerprint; up to ~1% of codes differed from one-at-a-time in benchmarks."),
    progress: bool = typer.Option(True, help="Show a progress bar (on stderr)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out that is not a token dir."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Apache Beam's log on stderr too "
                                 "(it always goes to OUT/tokenize.log)."),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if not shards or not out:
        raise checks.fail("--shards", "--shards and --out are required (or name a subcommand: fit-kmeans)")
    checks.audio_dir("--shards", shards)
    checks.choice("--acoustic", acoustic, defaults.ACOUSTIC_CODECS)
    checks.number("--bandwidth", bandwidth, above=0)
    checks.existing_dir("--codec-weights", codec_weights, what="an EnCodec save_pretrained dir")
    if not (semantic == "mfcc-kmeans" or (semantic.startswith("hf:") and len(semantic) > 3)):
        raise checks.fail("--semantic", f"expected mfcc-kmeans or hf:PATH[@LAYER] (got {semantic!r})")
    checks.existing_file("--kmeans", kmeans, what="a fitted k-means .npz")
    checks.number("--clusters", clusters, minimum=2)
    checks.choice("--text", text, ("minilm", "none"))
    checks.number("--batch-size", batch_size, minimum=1)
    checks.number("--torch-threads", torch_threads, minimum=1)
    checks.choice("--optimize", optimize, VARIANTS)
    checks.device("--device", device)
    checks.number("--codec-batch", codec_batch, minimum=0)
    if optimize == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        raise checks.fail("--optimize", "onnx needs ONNX Runtime: pip install 'cadenza[onnx]' (or use trace)")
    if optimize == "onnx" and device == "cuda":
        raise checks.fail("--optimize", "onnx runs on the CPU; use trace with --device cuda")
    checks.output_dir("--out", out, kind="tokens", force=force, command="tokenize",
                      own=("manifest.json", "tokenizers.json", "kmeans.npz", "tokenize.log"))
    checks.beam_args(list(ctx.args), [o for p in ctx.command.params for o in p.opts])

    from cadenza.cli.interrupt import resumable_shard_stage
    from cadenza.pipelines.tokenize.config import TokenizeConfig
    from cadenza.pipelines.tokenize.run import run_tokenize
    from cadenza.tokenizers.base import TokenizerMismatchError

    config = TokenizeConfig(
        shards=shards, out=out, acoustic=acoustic, bandwidth=bandwidth,
        codec_weights=str(codec_weights) if codec_weights else None, codec_random_init=codec_random_init,
        codec_small=codec_small, semantic=semantic, kmeans=kmeans, clusters=clusters, text=text,
        batch_size=batch_size, torch_threads=torch_threads, optimize=optimize, device=device,
        codec_batch=codec_batch, progress=progress,
    )
    with resumable_shard_stage(out, "tokenize", "token", verbose, refused=TokenizerMismatchError, refused_status=2):
        manifest = run_tokenize(config, beam_args=list(ctx.args))
    typer.echo(
        f"{manifest['clips_written']} clips tokenized ({manifest['audio_seconds']:.0f} s audio), "
        f"{manifest['failures']} failures {manifest['failures_by_category']} -> {out}/manifest.json"
        + (" [RANDOM codec weights]" if manifest["random_weights"] else "")
    )


@tokenize_app.command("fit-kmeans")
def fit_kmeans_cmd(
    shards: str = typer.Option(..., "--shards", help="Ingest output dir."),
    out: str = typer.Option(..., "--out", help="Where to write the k-means .npz."),
    clusters: int = typer.Option(defaults.CLUSTERS, help="Number of clusters (semantic vocabulary size)."),
    features: str = typer.Option("mfcc", help="mfcc (MFCC+deltas+chroma) or hf:PATH\\[@LAYER]."),
    max_clips: int = typer.Option(1000, help="Clips sampled across shards."),
    frames_per_clip: int = typer.Option(100, help="Frames sampled per clip."),
    seed: int = typer.Option(0, help="Seed of the clip and frame sample and of the k-means."),
    force: bool = typer.Option(False, "--force", help="Overwrite an --out file that is not a fitted k-means."),
) -> None:
    """Fit the semantic k-means (MiniBatchKMeans) on frames sampled across the audio shards."""
    checks.audio_dir("--shards", shards)
    checks.output_file("--out", out, suffixes=(".npz",), own=_is_kmeans, force=force, command="tokenize fit-kmeans")
    checks.number("--clusters", clusters, minimum=2)
    if not (features == "mfcc" or (features.startswith("hf:") and len(features) > 3)):
        raise checks.fail("--features", f"expected mfcc or hf:PATH[@LAYER] (got {features!r})")
    checks.number("--max-clips", max_clips, minimum=1)
    checks.number("--frames-per-clip", frames_per_clip, minimum=1)
    checks.number("--seed", seed, minimum=0)
    from cadenza.pipelines.tokenize.setup import fit_kmeans

    result = fit_kmeans(shards, out, clusters=clusters, features=features, max_clips=max_clips,
                        frames_per_clip=frames_per_clip, seed=seed)
    typer.echo(f"k-means {result['fingerprint']}: {clusters} clusters over {result['num_frames']} frames "
               f"from {result['clips']} clips -> {out}")


def _is_kmeans(path: Path) -> bool:
    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        return "centroids" in npz.files


def register(app: typer.Typer) -> None:
    app.add_typer(tokenize_app, name="tokenize")
