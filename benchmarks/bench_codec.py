"""Codec training: held-out reconstruction against training steps, and training throughput.

    PYTHONPATH=. python benchmarks/bench_codec.py [--steps 800] [--clips 28] [--threads 1] [--frame-locked-weight W]

Audio: the demo's synthesised styles, 10 s clips in 4 shards (the last held out). Prints held-out log-mel
L1 every --val-every steps as a ratio to the random-init codec the run starts from (measured in the same
run), the waveform correlation of held-out clips' decodes (first two; median and max over all pairs: a
buzz locked to the frame grid is common to every decode and raises them; the sources correlate near 0), the
frame-locked share of the decodes (RMS of the mean pattern per hop phase over the decode's RMS), and
training throughput in audio seconds per wall second next to a bare encoder+decoder step with only an L1
loss (the architecture's floor cost), as a ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from cadenza.codec.data import audio_shard_paths, load_clip_set, segment_batch
from cadenza.codec.presets import encodec_config, preset
from cadenza.codec.trainer import CodecTrainConfig, train_codec
from cadenza.demo.styles import STYLES
from cadenza.demo.synth import render
from cadenza.formats import shards

SR = 32_000


def make_audio(out: Path, clips: int, seconds: float = 10.0) -> str:
    styles = list(STYLES)
    per_shard = -(-clips // 4)
    rows = []
    for i in range(clips):
        buf = io.BytesIO()
        sf.write(buf, render(styles[i % len(styles)], seed=i, duration_s=seconds, sr=SR), SR, format="FLAC")
        key = f"bench{i:06d}_00000000_00010000"
        rows.append({"__key__": key, "flac": buf.getvalue(), "txt": styles[i % len(styles)],
                     "json": json.dumps({"ytid": key[:11], "key": key})})
    for s in range(0, clips, per_shard):
        shards.write_shard(str(out / "shards" / shards.shard_name("audio", s // per_shard)), rows[s:s + per_shard],
                           {"samples": len(rows[s:s + per_shard])})
    return str(out)


def bare_step_rate(audio_dir: str, batch: int, seconds: float, steps: int = 20) -> float:
    """Audio seconds per wall second of encoder -> decoder with an L1 loss and no quantizer."""
    from transformers import EncodecModel

    model = EncodecModel(encodec_config("demo")).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    clips = load_clip_set(audio_shard_paths(audio_dir)[:-1], 24_000, 8)
    seg = int(seconds * 24_000)
    t0 = time.perf_counter()
    for step in range(steps):
        x = torch.from_numpy(segment_batch(clips, batch, seg, 0, step))
        loss = (model.decoder(model.encoder(x[:, None]))[:, 0, :seg] - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch * seconds / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=preset("demo").steps)
    ap.add_argument("--clips", type=int, default=28)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frame-locked-weight", type=float, default=None, help="default: the trainer's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        audio = make_audio(Path(tmp) / "audio", args.clips)
        t0 = time.perf_counter()
        weight = {} if args.frame_locked_weight is None else {"frame_locked_weight": args.frame_locked_weight}
        record = train_codec(CodecTrainConfig(shards=audio, out=f"{tmp}/codec", preset="demo", steps=args.steps,
                                              val_every=args.val_every, progress=False, **weight))
        wall = time.perf_counter() - t0
        log = [json.loads(ln) for ln in Path(f"{tmp}/codec/train/metrics.jsonl").read_text().splitlines()]
        p = preset("demo")
        floor = bare_step_rate(audio, p.batch_size, p.segment_seconds)
    base = record["random_init_baseline"]
    print(f"demo codec, {record['params']:,} parameters, {record['training_shards']['clips']} training clips "
          f"({record['training_shards']['seconds']:.0f} s), {record['validation_shards']['clips']} held out; "
          f"frame-locked loss weight {record['loss_weights']['frame_locked']:g}; held-out sources' pairwise "
          f"correlation median {base['source_correlation_median']:.3f}")
    print(f"{'step':>6} {'log-mel L1':>11} {'x random-init':>14} {'STFT dist':>10} {'corr 1st two':>13} "
          f"{'corr median':>12} {'corr max':>9} {'frame-locked':>13}")

    def columns(row: dict) -> str:
        return (f"{row['stft_distance']:>10.3f} {row['decode_correlation_first_two']:>13.3f} "
                f"{row['decode_correlation_median']:>12.3f} {row['decode_correlation_max']:>9.3f} "
                f"{row['frame_locked_rms_ratio']:>13.3f}")

    print(f"{0:>6} {base['log_mel_l1']:>11.3f} {1.0:>14.2f} {columns(base)}   (random-init codec)")
    for row in (r for r in log if r["split"] == "val"):
        print(f"{row['step']:>6} {row['log_mel_l1']:>11.3f} {row['log_mel_l1'] / base['log_mel_l1']:>14.2f} "
              f"{columns(row)}")
    rates = [r["audio_s_per_s"] for r in log if r["split"] == "train"]
    rate = float(np.median(rates))
    print(f"training throughput: {rate:.1f} audio s / wall s (median over log intervals); bare encoder+decoder "
          f"step: {floor:.1f}; ratio {rate / floor:.2f}")
    print(f"whole run incl. data loading and validation: {wall:.0f} s for {args.steps} steps")


if __name__ == "__main__":
    main()
