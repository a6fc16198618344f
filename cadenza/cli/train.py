"""`cadenza train`, `cadenza sample`, `cadenza evaluate`: thin wrappers over cadenza.training."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _train(
    shards: str = typer.Option(
        ..., "--shards", help="Token dir written by `cadenza tokenize` (manifest.json + shards/)."
    ),
    out: str = typer.Option(..., "--out", help="Run dir: config.json, checkpoints/, metrics.jsonl."),
    config: str = typer.Option(
        "tiny", "--config", help="Model/optimizer preset `tiny` or `small`, or a JSON file of TrainConfig fields."
    ),
    steps: int = typer.Option(None, "--steps", help="Stop after this many optimizer steps (default: the preset's)."),
    weights: str = typer.Option(
        None, "--weights", help="Audit weights file (JSON/parquet): sample clip ytid with weight w, w times as often."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from RUN/checkpoints/latest (same loss curve as an uninterrupted run)."
    ),
    val_shards: str = typer.Option(
        None, "--val-shards", help="Token dir for periodic validation NLL per stage and codebook."
    ),
    batch_size: int = typer.Option(None, "--batch-size", help="Clips per step and process."),
    num_workers: int = typer.Option(None, "--num-workers", help="DataLoader worker processes."),
    seed: int = typer.Option(None, "--seed"),
) -> None:
    """Train the two-stage model (text -> semantic -> acoustic) on token shards.

    Several processes (DDP, gloo on CPU / NCCL on GPU): `torchrun --nproc_per_node N $(which cadenza)
    train ...`; each rank reads its own share of the shards and rank 0 writes checkpoints and metrics."""
    from rich.console import Console

    from cadenza.training.trainer import TrainConfig, train

    overrides = {
        "steps": steps,
        "weights": weights,
        "val_shards": val_shards,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "seed": seed,
    }
    saved = Path(out) / "config.json"
    if resume and saved.exists():
        cfg = TrainConfig.from_dict(
            {**json.loads(saved.read_text()), **{k: v for k, v in overrides.items() if v is not None}, "resume": True}
        )
    else:
        cfg = TrainConfig.preset(config, shards, out, resume=resume, **overrides)
    summary = train(cfg)
    Console(stderr=True).print(f"trained to step {summary['steps']}; last validation: {summary['last_val']}")


def _sample(
    run: str = typer.Option(..., "--run", help="Run dir of `cadenza train`."),
    prompt: list[str] = typer.Option(..., "--prompt", help="Caption to generate from; repeat for several clips."),
    out: str = typer.Option(
        ..., "--out", help="Output dir: sample-NNN.wav, .png spectrogram, .tokens.npz, samples.json."
    ),
    seconds: float = typer.Option(10.0, "--seconds"),
    temperature: float = typer.Option(1.0, "--temperature", help="0 = greedy."),
    top_k: int = typer.Option(0, "--top-k", help="Keep the k most likely tokens (0 = off)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (1 = off)."),
    cfg_scale: float = typer.Option(3.0, "--cfg-scale", help="Classifier-free guidance scale (1 = off)."),
    seed: int = typer.Option(0, "--seed"),
    codec_weights: str = typer.Option(None, "--codec-weights", help="EnCodec weights dir (as for tokenize)."),
    codec_random_init: bool = typer.Option(
        False, "--codec-random-init", help="Decode with the random-init codec saved in TOKENS/codec."
    ),
) -> None:
    """Generate audio from text prompts with a trained run (KV-cache decoding, CFG, EnCodec decoder)."""
    from rich.console import Console

    from cadenza.training.sampler import SampleConfig, sample

    cfg = SampleConfig(
        seconds=seconds, temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale, seed=seed
    )
    results = sample(run, prompt, out, cfg, codec_weights=codec_weights, codec_random_init=codec_random_init)
    for r in results:
        Console().print(f"{Path(out) / r['wav']}  ({r['seconds']:.1f} s)  {r['prompt']}")


def _evaluate(
    run: str = typer.Option(..., "--run", help="Run dir of `cadenza train`."),
    shards: str = typer.Option(..., "--shards", help="Held-out token dir (not used in training)."),
    out: str = typer.Option(..., "--out", help="Output dir: metrics.json, report.html, plots, wavs/."),
    audit: str = typer.Option(None, "--audit", help="Audit dir: break every metric down by its cultural groups."),
    num_samples: int = typer.Option(16, "--num-samples", help="Held-out captions to generate from."),
    seconds: float = typer.Option(None, "--seconds", help="Window for NLL and generation (default: training crop)."),
    seed: int = typer.Option(0, "--seed"),
    codec_weights: str = typer.Option(None, "--codec-weights"),
    codec_random_init: bool = typer.Option(False, "--codec-random-init"),
    embeddings: str = typer.Option(
        "mfcc", "--embeddings", help="Audio embeddings for FD/KAD/adherence: mfcc (offline), encodec, hf:PATH."
    ),
    labels: str = typer.Option(
        None, "--labels", help="JSON {clip key or ytid: label} (or the demo's demo-manifest.json) for adherence; "
        "default: the audit's --label-grouping."
    ),
    label_grouping: str = typer.Option("genre", "--label-grouping", help="Audit grouping that labels clips."),
) -> None:
    """Held-out NLL, caption information gain, KAD/FD against a reference floor, prompt adherence, pull toward
    the mainstream, token statistics and a memorization probe, optionally per audit group."""
    from rich.console import Console

    from cadenza.training.embeddings import EmbeddingError
    from cadenza.training.evaluate import EvalConfig, evaluate, load_labels
    from cadenza.training.sampler import SampleConfig

    cfg = EvalConfig(num_samples=num_samples, seconds=seconds, sample=SampleConfig(seed=seed),
                     embeddings=embeddings, label_grouping=label_grouping)
    try:
        clip_labels = load_labels(labels)
        m = evaluate(run, shards, out, audit_dir=audit, labels=clip_labels, config=cfg, codec_weights=codec_weights,
                     codec_random_init=codec_random_init)
    except (EmbeddingError, FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {str(exc).splitlines()[0]}", fg="red", err=True)
        raise typer.Exit(2) from None
    nll, cg = m["nll"], m["caption_gain"]
    Console().print(
        f"held-out NLL semantic {nll.get('nll_semantic', float('nan')):.3f}, acoustic "
        f"{nll.get('nll_acoustic', float('nan')):.3f} nats/token; caption gain semantic "
        f"{cg['semantic']['gain']:.3f}, acoustic {cg['acoustic']['gain']:.3f}; report: {Path(out) / 'report.html'}"
    )


def register(app: typer.Typer) -> None:
    app.command("train")(_train)
    app.command("sample")(_sample)
    app.command("evaluate")(_evaluate)
