"""`cadenza demo`: the whole chain on a small synthesised dataset, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("cadenza-demo"), "--out", help="output directory (reused by later runs)"),
    csv: str = typer.Option(
        None, "--csv",
        help="run on this MusicCaps CSV (path or URL) against YouTube instead of the synthesised data; "
             "needs network access (YouTube, the AudioSet ontology, pretrained tokenizer weights)",
    ),
    clips: int = typer.Option(36, "--clips", min=1, help="synthesised clips (the offline demo only)"),
    seed: int = typer.Option(0, "--seed", help="seed of the synthesised dataset and of training"),
    steps: int = typer.Option(400, "--steps", min=1,
                              help="training steps of the tiny model (its samples follow their prompts after a few "
                                   "hundred; at 60 they all sound alike)"),
    codec_steps: int = typer.Option(None, "--codec-steps", min=1,
                                    help="training steps of the demo codec (default: the `demo` preset's)"),
    limit: int = typer.Option(None, "--limit", min=1, help="ingest only the first N valid rows (useful with --csv)"),
    plan: bool = typer.Option(False, "--plan", help="build the demo dataset and print what would run, then stop"),
    force: bool = typer.Option(False, "--force", help="write into a non-empty --out that is not a demo's"),
) -> None:
    """Build a small MusicCaps-format dataset offline (synthesised clips in 7 styles, captions, AudioSet labels
    and 3 rows that must fail), serve it on 127.0.0.1 and run the real chain on it: ingest with yt-dlp,
    train a small EnCodec on that audio, tokenize with it, audit, measure the codec per audit group, train
    the tiny model briefly, sample, evaluate.
    Prints where the shards, the audit report, the samples and the evaluation report are. Safe to run twice:
    finished work is reused."""
    from cadenza import stages
    from cadenza.cli import checks
    from cadenza.demo.run import run_demo
    from cadenza.stages import StageError

    own = ["demo-data", *stages.STAGE_DIRS.values()]
    checks.output_dir("--out", out, own=own, force=force, command="demo")

    try:
        run_demo(out, csv, n_clips=clips, seed=seed, max_steps=steps, limit=limit, plan_only=plan,
                 codec_steps=codec_steps)
    except StageError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
