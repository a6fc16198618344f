"""`cadenza codec train` and `cadenza codec eval`: an EnCodec trained on your own audio, and measured."""

from __future__ import annotations

import json

import typer

from cadenza.formats import defaults

codec_app = typer.Typer(
    help="Train an EnCodec on your own audio shards (offline: no model hub needed) and measure any codec's "
         "reconstruction, overall and per audit group.",
    no_args_is_help=True,
)


@codec_app.command("train")
def train_cmd(
    shards: str = typer.Option(..., "--shards", help="Ingest output dir whose audio shards the codec learns from."),
    out: str = typer.Option(..., "--out", help="Codec dir: a save_pretrained EncodecModel (pass it to `cadenza "
                            "tokenize --codec-weights`), codec.json (training record), train/ (checkpoints)."),
    preset: str = typer.Option(defaults.CODEC_PRESET, "--preset", help="demo (~0.7 M params, 4 codebooks, minutes "
                               "on a CPU), small (~2.9 M, 8 codebooks) or 24khz (Meta's encodec_24khz architecture)."),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps (default: the preset's)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Segments per step (default: the preset's)."),
    segment_seconds: float = typer.Option(None, "--segment-seconds",
                                          help="Seconds of audio per training segment (default: the preset's)."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate (default: the preset's)."),
    val_shards: str = typer.Option(None, "--val-shards", help="Ingest dir of held-out audio for validation "
                                   "(default: the last --holdout-shards shards of --shards)."),
    holdout_shards: int = typer.Option(1, "--holdout-shards", help="Without --val-shards: hold out this many of "
                                       "the last shards for validation (0: none)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/train/checkpoints (exactly as an "
                                "uninterrupted run), or reuse a finished run of the same settings."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and of the segments drawn."),
    frame_locked_weight: float = typer.Option(
        None, "--frame-locked-weight", help="Weight of the loss on the decode's pattern repeated every frame (the "
        "75 Hz buzz every decode shares); default 1, 0 turns it off."),
    as_json: bool = typer.Option(False, "--json", help="Print the training record as one JSON document."),
) -> None:
    """Train EnCodec (transformers' EncodecModel, the class of Meta's weights) on audio shards.

    Residual VQ with k-means-initialised, EMA-updated codebooks and dead-code re-seeding; losses:
    multi-resolution log-mel and STFT, waveform L1, frame-locked pattern, commitment. Held-out
    reconstruction is measured against the random-init codec the run starts from."""
    from cadenza.cli import checks

    checks.choice("--preset", preset, defaults.CODEC_PRESETS)
    checks.number("--steps", steps, minimum=1)
    checks.number("--batch-size", batch_size, minimum=1)
    checks.number("--segment-seconds", segment_seconds, minimum=0.05)
    checks.number("--lr", lr, above=0)
    checks.number("--holdout-shards", holdout_shards, minimum=0)
    checks.number("--frame-locked-weight", frame_locked_weight, minimum=0)
    checks.audio_dir("--shards", shards)
    checks.audio_dir("--val-shards", val_shards)
    checks.output_dir("--out", out, own=("codec.json", "train/config.json"), command="codec train")

    from cadenza.codec.trainer import CodecTrainConfig, train_codec

    record = train_codec(CodecTrainConfig(shards=shards, out=out, preset=preset, steps=steps, batch_size=batch_size,
                                          segment_seconds=segment_seconds, lr=lr, val_shards=val_shards,
                                          holdout_shards=holdout_shards, resume=resume, seed=seed,
                                          **({} if frame_locked_weight is None else
                                             {"frame_locked_weight": frame_locked_weight})))
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    held, base = record.get("heldout") or {}, record.get("random_init_baseline") or {}
    typer.echo(f"codec -> {out} ({record['preset']}, {record['num_codebooks']} codebooks at {record['bandwidth']} "
               f"kbps, {record['steps']} steps)")
    if held:
        typer.echo(f"held-out log-mel L1 {held['log_mel_l1']:.3f} "
                   f"(random-init codec: {base.get('log_mel_l1', 0):.3f}), SI-SNR {held['si_snr']:.1f} dB; "
                   f"use it: cadenza tokenize --codec-weights {out} ...")


@codec_app.command("eval")
def eval_cmd(
    codec: str = typer.Option(..., "--codec", help="Codec dir: `cadenza codec train` output or any "
                              "save_pretrained EnCodec (e.g. a local copy of facebook/encodec_24khz)."),
    shards: str = typer.Option(..., "--shards", help="Ingest output dir with the audio to reconstruct."),
    out: str = typer.Option(..., "--out", help="Output dir: metrics.json, clips.jsonl, PNG plots, report.html."),
    audit: str = typer.Option(None, "--audit", help="Audit dir (`cadenza audit --out`): break every metric down "
                              "per group and flag groups reconstructed significantly worse."),
    max_clips: int = typer.Option(None, "--max-clips", help="Evaluate this many clips spread over all shards."),
    min_group_size: int = typer.Option(3, "--min-group-size", help="Smallest group (and rest) that is tested."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout."),
) -> None:
    """Reconstruction quality (log-mel L1, multi-resolution STFT distance, SI-SNR), codebook usage and
    entropy per level, and bitrate of a codec on audio shards, overall and per audit group."""
    from cadenza.cli import checks

    checks.existing_dir("--codec", codec, what="a codec dir (save_pretrained)")
    checks.audio_dir("--shards", shards)
    checks.existing_dir("--audit", audit, what="an audit dir (`cadenza audit --out`)")
    checks.number("--max-clips", max_clips, minimum=1)
    checks.number("--min-group-size", min_group_size, minimum=2)
    checks.output_dir("--out", out, own=("metrics.json", "clips.jsonl"), command="codec eval")

    from cadenza.codec.evaluate import CodecEvalConfig, evaluate_codec

    metrics = evaluate_codec(CodecEvalConfig(codec=codec, shards=shards, out=out, audit=audit, max_clips=max_clips,
                                             min_group_size=min_group_size))
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    from cadenza.codec.report import summary_lines

    for line in summary_lines(metrics):
        typer.echo(line)
    typer.echo(f"report: {out}/report.html")
    for f in metrics.get("flagged", []):  # a group may be worse on any of the distances, not only log-mel L1
        worse = ", ".join(f"{m} {f[m]:.3f}" for m in f["worse_on"])
        typer.echo(f"worse than the rest: {f['grouping']}={f['group']} ({worse}, q={f['q']:.3g})")


def register(app: typer.Typer) -> None:
    app.add_typer(codec_app, name="codec")
