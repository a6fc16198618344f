"""GPU paths, measured: EnCodec encode throughput per batch size (and the share of codes each batch size and
bf16 change against one clip at a time in fp32, and CUDA against CPU), and `small` training tokens/s in fp32
against bf16.

    PYTHONPATH=. python benchmarks/bench_gpu.py                  # on a CUDA GPU, well under 8 minutes
    PYTHONPATH=. python benchmarks/bench_gpu.py --device cpu     # a small version of the same on the CPU

Without --device cpu and without a CUDA device it prints one line saying so and exits 0. Every figure is
labelled with the device it was measured on. The codec is `--codec-weights DIR` (a save_pretrained dir,
e.g. from `cadenza codec train`) or a random-init codec: full width on CUDA, the narrow test widths on CPU.
A random codec's codebooks come from k-means on few frames and hold near-duplicate codewords, where rounding
flips codes more often than on a trained codec, so its shares are an upper side of what a real codec shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MAX_CHANGED = 0.02  # the share of codes a variant may change against eager fp32 (issue 14)

# (clips, seconds, batch sizes, train steps, train batch, train crop s) per device
SIZES = {"cuda": (64, 10.0, (1, 4, 16, 64), 30, 16, 10.0), "cpu": (8, 4.0, (1, 2, 4, 8), 4, 2, 2.0)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def music_clips(count: int, seconds: float, sr: int) -> list[np.ndarray]:
    from cadenza.demo.style_renderers import RENDERERS
    from cadenza.demo.synth import render

    styles = sorted(RENDERERS)
    return [render(styles[i % len(styles)], seed=i, duration_s=seconds, sr=sr).astype(np.float32)
            for i in range(count)]


def load_codec(args, device: str):
    from transformers import EncodecModel

    from cadenza.tokenizers.random_codec import build_random_codec

    if args.codec_weights:
        return EncodecModel.from_pretrained(args.codec_weights, local_files_only=True), "trained " + args.codec_weights
    small = device == "cpu"
    return build_random_codec("encodec_24khz", small=small), "random-init" + (" (narrow test widths)" if small else "")


def changed(reference: list[np.ndarray], codes: list[np.ndarray]) -> tuple[float, float]:
    """Share of all codes, and of the first codebook's, that differ from the reference."""
    total = sum(int((a != b).sum()) for a, b in zip(reference, codes, strict=True)) / sum(a.size for a in reference)
    first = sum(int((a[0] != b[0]).sum()) for a, b in zip(reference, codes, strict=True)) / sum(
        a.shape[1] for a in reference)
    return total, first


def bench_encode(args, device: str, sizes) -> dict:
    from cadenza.tokenizers.acoustic import EncodecTokenizer
    from cadenza.tokenizers.encode_batch import EncodeVariant

    count, seconds, batches = sizes[0], sizes[1], sizes[2]
    model, what = load_codec(args, device)
    bandwidth = json.loads((Path(args.codec_weights) / "cadenza_codec.json").read_text())["bandwidth"] \
        if args.codec_weights and (Path(args.codec_weights) / "cadenza_codec.json").is_file() else None
    clips = music_clips(count, seconds, model.config.sampling_rate)
    audio_s = count * seconds
    log(f"encode: {count} clips x {seconds:g} s, codec {what}, optimize={args.optimize}, device {device}")

    def run(variant: EncodeVariant, on: str = device):
        tok = EncodecTokenizer("encodec_24khz", model, bandwidth=bandwidth, optimize=args.optimize, device=on,
                               variant=variant)
        tok.encode(clips[: variant.batch])  # warm-up: traces, kernels, allocator
        t = time.perf_counter()
        codes = tok.encode(clips)
        return codes, time.perf_counter() - t

    cpu_codes = None
    if device == "cuda":  # first: the tokenizers below move the model to the GPU
        cpu_codes, cpu_s = run(EncodeVariant(), on="cpu")
        log(f"  cpu batch 1 fp32 (reference for cuda vs cpu): {count / cpu_s:.1f} clips/s")
    rows, reference, base_s = [], None, None
    for precision in ("fp32", "bf16"):
        for batch in batches if precision == "fp32" else (batches[0], batches[-1]):
            try:
                codes, wall = run(EncodeVariant(batch=batch, precision=precision))
            except Exception as exc:  # noqa: BLE001 (one failing variant is reported; the others are still measured)
                rows.append({"batch": batch, "precision": precision, "error": f"{type(exc).__name__}: {exc}"})
                log(f"  batch {batch} {precision}: FAILED {type(exc).__name__}: {exc}")
                continue
            if reference is None:
                reference, base_s = codes, wall
            share, first = changed(reference, codes)
            row = {"batch": batch, "precision": precision, "clips_per_s": count / wall, "x_realtime": audio_s / wall,
                   "speedup_vs_batch1_fp32": base_s / wall, "codes_changed": share, "codebook0_changed": first,
                   "within_2pct": share <= MAX_CHANGED}
            rows.append(row)
            log(f"  batch {batch:>3} {precision}: {row['clips_per_s']:8.1f} clips/s, {row['x_realtime']:8.1f}x "
                f"realtime, {row['speedup_vs_batch1_fp32']:5.2f}x batch-1 fp32; codes changed {share:.2%} "
                f"(codebook 0: {first:.2%})")
    result = {"codec": what, "clips": count, "seconds": seconds, "optimize": args.optimize, "rows": rows}
    if cpu_codes is not None and reference is not None:
        result["cuda_vs_cpu_changed"], result["cuda_vs_cpu_codebook0_changed"] = changed(cpu_codes, reference)
    return result


def bench_train(device: str, sizes, threads: int) -> dict:
    from bench_train import make_realistic_tokens  # benchmarks/ is on sys.path when run as a script

    from cadenza.training.trainer import TrainConfig, train

    steps, batch, crop = sizes[3], sizes[4], sizes[5]
    out: dict = {"model": "small", "steps": steps, "batch": batch, "crop_seconds": crop}
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens"
        make_realistic_tokens(tokens, clips=max(64, 4 * batch), per_shard=32)
        for precision in ("fp32", "bf16"):
            run = Path(tmp) / f"run-{precision}"
            cfg = TrainConfig.preset("small", str(tokens), str(run), steps=steps, batch_size=batch, crop_seconds=crop,
                                     log_every=1, ckpt_every=10**9, warmup_steps=1, device=device,
                                     precision=precision, progress=False)
            summary = train(cfg)
            lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
            timed = [x["tokens_per_s"] for x in lines[min(2, len(lines) - 1):]]  # the first steps warm up
            out[precision] = {"tokens_per_s": float(np.median(timed)), "last_loss": lines[-1]["loss"],
                              "precision_used": summary["precision"], "params": summary["params"]}
            log(f"  train small {precision}: {out[precision]['tokens_per_s']:,.0f} tokens/s (median of steps "
                f"{len(lines) - len(timed) + 1}..{len(lines)}), last loss {lines[-1]['loss']:.3f}")
    out["bf16_speedup"] = out["bf16"]["tokens_per_s"] / out["fp32"]["tokens_per_s"]
    out["threads"] = threads if device == "cpu" else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--codec-weights", help="A save_pretrained EnCodec dir (24 kHz family); default: random init.")
    ap.add_argument("--optimize", default="trace", choices=("eager", "fold", "trace"))
    ap.add_argument("--threads", type=int, default=1, help="Torch threads on CPU.")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", action="store_true", help="Print one JSON document instead of the summary lines.")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (torch sees none); nothing measured. "
              "Use --device cpu for the small CPU version.")
        return 0
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    sizes = SIZES[args.device]
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    t0 = time.perf_counter()
    result = {"device": args.device, "device_name": name, "torch": torch.__version__,
              "encode": bench_encode(args, args.device, sizes)}
    if not args.skip_train:
        result["train"] = bench_train(args.device, sizes, args.threads)
    result["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    label = f"[{args.device.upper()}: {name}]"
    enc = result["encode"]
    print(f"{label} encode, {enc['clips']} clips x {enc['seconds']:g} s, codec {enc['codec']}, "
          f"optimize={enc['optimize']}")
    for r in enc["rows"]:
        if "error" in r:
            print(f"{label}   batch {r['batch']:>3} {r['precision']}: FAILED {r['error']}")
            continue
        print(f"{label}   batch {r['batch']:>3} {r['precision']}: {r['clips_per_s']:8.1f} clips/s "
              f"({r['x_realtime']:.1f}x realtime, {r['speedup_vs_batch1_fp32']:.2f}x batch 1 fp32); codes changed "
              f"{r['codes_changed']:.2%}, codebook 0 {r['codebook0_changed']:.2%}"
              f"{'' if r['within_2pct'] else '  > 2%: not allowed as a variant'}")
    if "cuda_vs_cpu_changed" in enc:
        print(f"{label}   batch 1 fp32 on CUDA against the same on CPU: codes changed "
              f"{enc['cuda_vs_cpu_changed']:.2%}, "
              f"codebook 0 {enc['cuda_vs_cpu_codebook0_changed']:.2%}")
    if "train" in result:
        tr = result["train"]
        print(f"{label} train small ({tr['fp32']['params'] / 1e6:.1f} M params), batch {tr['batch']} x "
              f"{tr['crop_seconds']:g} s: fp32 {tr['fp32']['tokens_per_s']:,.0f} tokens/s, bf16 "
              f"{tr['bf16']['tokens_per_s']:,.0f} tokens/s ({tr['bf16_speedup']:.2f}x); last loss fp32 "
              f"{tr['fp32']['last_loss']:.3f}, bf16 {tr['bf16']['last_loss']:.3f}")
    print(f"{label} wall {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
