"""`cadenza train`, `cadenza sample`, `cadenza evaluate`: thin wrappers over cadenza.training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer

from cadenza.cli import checks
from cadenza.formats import defaults
from cadenza.formats.assignments import ASSIGNMENTS_FILE

# what `train` writes into a run dir; --force removes exactly these before starting over
RUN_FILES = ("checkpoints", "metrics.jsonl", "train_summary.json", "config.json", "tokens_manifest.json")


def _check_weights(weights: str | None) -> None:
    if weights is None:
        return
    checks.existing_file("--weights", weights, what="an audit weights file (.json or .parquet)")
    from cadenza.training.data import load_weights

    try:
        load_weights(weights)
    except (OSError, ValueError, KeyError) as exc:
        raise checks.fail("--weights", f"not an audit weights file: {str(exc).splitlines()[0][:300]}") from None


def _check_run_out(out: str, resume: bool, force: bool) -> None:
    """A run dir is continued with --resume or restarted with --force, never silently overwritten."""
    if resume and force:
        raise checks.fail("--force", "give --resume to continue the run or --force to start it over, not both")
    checks.output_dir("--out", out, kind="run", own=("config.json",), force=force, command="train")
    run = Path(out)
    if resume or not (run / "config.json").is_file():
        return
    if not force:
        try:
            step = json.loads((run / "checkpoints" / "latest.json").read_text())["step"]
            where = f" (checkpoint at step {step})"
        except (OSError, ValueError, KeyError, TypeError):
            where = ""
        raise checks.fail("--out", f"{run} already holds a training run{where}; pass --resume to continue it, "
                                   "--force to start it over, or give another --out")
    for name in RUN_FILES:
        path = run / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _train(
    shards: str = typer.Option(
        ..., "--shards", help="Token dir written by `cadenza tokenize` (manifest.json + shards/)."
    ),
    out: str = typer.Option(..., "--out", help="Run dir: config.json, checkpoints/, metrics.jsonl."),
    config: str = typer.Option(
        defaults.MODEL_PRESET, "--config",
        help="Model/optimizer preset `tiny` or `small`, or a JSON file of TrainConfig fields.",
    ),
    steps: int = typer.Option(None, "--steps", help="Stop after this many optimizer steps (default: the preset's)."),
    weights: str = typer.Option(
        None, "--weights", help="Audit weights file (JSON/parquet): sample clip ytid with weight w, w times as often."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from RUN/checkpoints/latest (same loss curve as an uninterrupted run)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start over in an --out that holds a run (deletes its checkpoints and metrics)."
    ),
    val_shards: str = typer.Option(
        None, "--val-shards", help="Token dir for periodic validation NLL per stage and codebook."
    ),
    batch_size: int = typer.Option(None, "--batch-size", help="Clips per step and process (default: the preset's)."),
    num_workers: int = typer.Option(None, "--num-workers", help="DataLoader worker processes (0: read in-process)."),
    seed: int = typer.Option(None, "--seed", help="Seed of initialisation, data order and dropout (default 0)."),
    device: str = typer.Option(None, "--device", help="auto (CUDA when present; the default), cpu or cuda."),
    precision: str = typer.Option(
        None, "--precision", help="fp32, bf16 (autocast, also on CPU) or auto (the default: bf16 on CUDA GPUs "
        "that support it, else fp32)."
    ),
) -> None:
    """Train the two-stage model (text -> semantic -> acoustic) on token shards.

    Ctrl-C or SIGTERM stops after the current step and writes a checkpoint; rerun with --resume.
    Several processes (DDP, gloo on CPU / NCCL on GPU): `torchrun --nproc_per_node N $(which cadenza)
    train ...`; each rank reads its own share of the shards and rank 0 writes checkpoints and metrics."""
    checks.token_dir("--shards", shards)
    checks.preset_or_file("--config", config)
    checks.number("--steps", steps, minimum=1)
    checks.number("--batch-size", batch_size, minimum=1)
    checks.number("--num-workers", num_workers, minimum=0)
    checks.number("--seed", seed, minimum=0)
    if device is not None:
        checks.device("--device", device)
    if precision is not None:
        checks.choice("--precision", precision, defaults.PRECISIONS)
    checks.token_dir("--val-shards", val_shards)
    _check_weights(weights)
    _check_run_out(out, resume, force)

    from rich.console import Console

    from cadenza.cli.interrupt import Interrupted, StopRequest, command_line
    from cadenza.training.trainer import TrainConfig, train

    overrides = {
        "steps": steps,
        "weights": weights,
        "val_shards": val_shards,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "seed": seed,
        "device": device,
        "precision": precision,
    }
    saved = Path(out) / "config.json"
    try:
        if resume and saved.exists():
            cfg = TrainConfig.from_dict(
                {**json.loads(saved.read_text()), **{k: v for k, v in overrides.items() if v is not None},
                 "resume": True}
            )
        else:
            cfg = TrainConfig.preset(config, shards, out, resume=resume, **overrides)
    except (ValueError, TypeError) as exc:
        raise checks.fail("--config" if not resume else "--resume", f"bad training config: {exc}") from None
    def resume_command() -> str:
        args = command_line()
        return args if "--resume" in args.split() else f"{args} --resume"

    with StopRequest(resume=resume_command) as stop:
        summary = train(cfg, stop=lambda: stop.requested)
    ckpt = summary.get("checkpoint")
    if summary.get("interrupted"):
        import signal

        args = resume_command()
        signum = stop.signum or signal.SIGINT
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}: stopped at step {summary['steps']}; "
                          f"checkpoint kept: {ckpt}; resume with: {args}", signum)
    Console(stderr=True).print(f"trained to step {summary['steps']}; last validation: {summary['last_val']}")
    typer.echo(f"checkpoint: {ckpt}")


def _sample(
    run: str = typer.Option(..., "--run", help="Run dir of `cadenza train`."),
    prompt: list[str] = typer.Option(..., "--prompt", help="Caption to generate from; repeat for several clips."),
    out: str = typer.Option(
        ..., "--out", help="Output dir: sample-NNN.wav, .png spectrogram, .tokens.npz, samples.json."
    ),
    seconds: float = typer.Option(defaults.SAMPLE_SECONDS, "--seconds", help="Length of each clip in seconds (> 0)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature (>= 0); 0 = greedy."),
    top_k: int = typer.Option(0, "--top-k", help="Keep the k most likely tokens (0 = off)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass in (0, 1] (1 = off)."),
    cfg_scale: float = typer.Option(3.0, "--cfg-scale", help="Classifier-free guidance scale (1 = off)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling draws."),
    codec_weights: str = typer.Option(None, "--codec-weights", help="EnCodec weights dir (as for tokenize)."),
    codec_random_init: bool = typer.Option(
        False, "--codec-random-init", help="Decode with the random-init codec saved in TOKENS/codec."
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda: where the model runs."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out that is not a samples dir."),
) -> None:
    """Generate audio from text prompts with a trained run (KV-cache decoding, CFG, EnCodec decoder)."""
    checks.run_dir("--run", run)
    if not all(p.strip() for p in prompt):
        raise checks.fail("--prompt", "expected a caption, got an empty string")
    checks.number("--seconds", seconds, above=0)
    checks.number("--temperature", temperature, minimum=0)
    checks.number("--top-k", top_k, minimum=0)
    checks.number("--top-p", top_p, above=0, maximum=1)
    checks.number("--cfg-scale", cfg_scale, minimum=0)
    checks.number("--seed", seed, minimum=0)
    checks.existing_dir("--codec-weights", codec_weights, what="an EnCodec save_pretrained dir")
    checks.device("--device", device)
    checks.output_dir("--out", out, own=("samples.json", "sample-*.wav"), force=force, command="sample")

    from cadenza.common.devices import resolve_device
    from cadenza.training.sampler import SampleConfig, sample

    cfg = SampleConfig(
        seconds=seconds, temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale, seed=seed
    )
    with _model_errors():
        results = sample(run, prompt, out, cfg, codec_weights=codec_weights, codec_random_init=codec_random_init,
                         device=resolve_device(device))
    for r in results:
        typer.echo(f"{Path(out) / r['wav']}  ({r['seconds']:.1f} s)  {r['prompt']}")
    typer.echo(f"index: {Path(out) / 'samples.json'}")


def _evaluate(
    run: str = typer.Option(..., "--run", help="Run dir of `cadenza train`."),
    shards: str = typer.Option(..., "--shards", help="Held-out token dir (not used in training)."),
    out: str = typer.Option(..., "--out", help="Output dir: metrics.json, report.html, plots, wavs/."),
    audit: str = typer.Option(None, "--audit", help="Audit dir: break every metric down by its cultural groups."),
    num_samples: int = typer.Option(defaults.EVAL_SAMPLES, "--num-samples",
                                    help="Held-out captions to generate from (>= 1)."),
    seconds: float = typer.Option(None, "--seconds", help="Window for NLL and generation (default: training crop)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generation draws."),
    codec_weights: str = typer.Option(None, "--codec-weights", help="EnCodec weights dir (as for tokenize)."),
    codec_random_init: bool = typer.Option(
        False, "--codec-random-init", help="Decode with the random-init codec saved in TOKENS/codec."
    ),
    embeddings: str = typer.Option(
        defaults.EMBEDDINGS, "--embeddings",
        help="Audio embeddings for FD/KAD/adherence: mfcc (offline), encodec, hf:PATH.",
    ),
    labels: str = typer.Option(
        None, "--labels", help="JSON {clip key or ytid: label} (or the demo's demo-manifest.json) for adherence; "
        "default: the audit's --label-grouping."
    ),
    label_grouping: str = typer.Option("genre", "--label-grouping", help="Audit grouping that labels clips."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda: where the model runs."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out that is not an eval dir."),
) -> None:
    """Held-out NLL, caption information gain, KAD/FD against a reference floor, prompt adherence, pull toward
    the mainstream, token statistics and a memorization probe, optionally per audit group."""
    checks.run_dir("--run", run)
    checks.token_dir("--shards", shards)
    audit_path = checks.existing_dir("--audit", audit, what="an audit dir (written by `cadenza audit`)")
    if audit_path is not None and not (audit_path / ASSIGNMENTS_FILE).is_file():
        raise checks.fail("--audit", f"{audit_path} has no {ASSIGNMENTS_FILE}; expected an audit dir "
                                     "(written by `cadenza audit`)")
    checks.number("--num-samples", num_samples, minimum=1)
    checks.number("--seconds", seconds, above=0)
    checks.number("--seed", seed, minimum=0)
    checks.existing_dir("--codec-weights", codec_weights, what="an EnCodec save_pretrained dir")
    checks.existing_file("--labels", labels, what="a JSON file of clip labels")
    checks.device("--device", device)
    checks.output_dir("--out", out, own=("metrics.json", "report.html", "wavs"), force=force, command="evaluate")

    from rich.console import Console

    from cadenza.common.devices import resolve_device
    from cadenza.evaluation.embeddings import EmbeddingError
    from cadenza.evaluation.evaluate import EvalConfig, evaluate, load_labels
    from cadenza.training.sampler import SampleConfig

    cfg = EvalConfig(num_samples=num_samples, seconds=seconds, sample=SampleConfig(seed=seed),
                     embeddings=embeddings, label_grouping=label_grouping)
    try:
        clip_labels = load_labels(labels)
        with _model_errors():
            m = evaluate(run, shards, out, audit_dir=audit, labels=clip_labels, config=cfg,
                         codec_weights=codec_weights, codec_random_init=codec_random_init,
                         device=resolve_device(device))
    except (EmbeddingError, FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {str(exc).splitlines()[0]}", fg="red", err=True)
        raise typer.Exit(2) from None
    nll, cg = m["nll"], m["caption_gain"]
    Console(stderr=True).print(
        f"held-out NLL semantic {nll.get('nll_semantic', float('nan')):.3f}, acoustic "
        f"{nll.get('nll_acoustic', float('nan')):.3f} nats/token; caption gain semantic "
        f"{cg['semantic']['gain']:.3f}, acoustic {cg['acoustic']['gain']:.3f}"
    )
    typer.echo(f"report: {Path(out) / 'report.html'}")
    typer.echo(f"metrics: {Path(out) / 'metrics.json'}")


class _model_errors:
    """A checkpoint or token dir that does not fit the run: one line (SourceError, exit 2), not a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, _tb: object) -> bool:
        from cadenza.common.sources import SourceError
        from cadenza.formats.token_spec import FingerprintMismatch
        from cadenza.training.checkpoint import CheckpointError

        if exc is not None and isinstance(exc, CheckpointError | FingerprintMismatch):
            raise SourceError(str(exc)) from exc
        return False


def register(app: typer.Typer) -> None:
    app.command("train")(_train)
    app.command("sample")(_sample)
    app.command("evaluate")(_evaluate)
