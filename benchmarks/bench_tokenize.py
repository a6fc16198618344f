"""Tokenize speed: EnCodec CPU variants (speed and codes changed) and pipeline overhead vs a raw encode loop.

Run: PYTHONPATH=. python benchmarks/bench_tokenize.py [--clips 24] [--variant-clips 4] [--no-compile]

Uses the real 24 kHz EnCodec architecture with seeded random weights and k-means codebooks (no network
here); speed does not depend on weight values. Every figure is a ratio against a baseline measured in
the same process. MusicCaps = 5,521 clips, 55,210 s of audio.
"""

from __future__ import annotations

import os
import sys

# this file is named like the stdlib `tokenize`: drop its folder from the path before anything imports that
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pipelines"))
MUSICCAPS_SECONDS = 55_210


def music_like(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Chords with vibrato, a drum-like noise pulse and a noise floor: busy enough to exercise all codes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = np.zeros_like(t)
    for f in 110 * 2 ** (rng.integers(0, 24, 3) / 12):
        y += np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t) / 5) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    pulse = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.size)
    y = y + 2 * pulse + 0.05 * rng.standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


class Clock:
    """Wall seconds and this process's CPU seconds (the latter barely moves when other jobs share the cores)."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall0, time.process_time() - self.cpu0


def encode_variants(clips24: list[np.ndarray], tok, use_compile: bool) -> list[dict]:
    """Each variant encodes the same clips; codes compared with eager batch-1 one-thread codes."""
    from cadenza.tokenizers.acoustic import _FastEncoder

    seconds = sum(len(c) for c in clips24) / 24_000
    model, bw = tok.model, tok.bandwidth
    fast = _FastEncoder(model, bw)

    def eager(x):
        return model.encode(x, bandwidth=bw).audio_codes[0].transpose(0, 1)  # [K, B, T]

    def run(fn, batch: int):
        codes = []
        with torch.inference_mode():
            for i in range(0, len(clips24), batch):
                x = torch.from_numpy(np.stack(clips24[i:i + batch]))[:, None]
                out = fn(x)
                codes += [out[:, b] for b in range(out.shape[1])]
        return codes

    traced = {}

    def trace_fn(x):
        key = tuple(x.shape)
        if key not in traced:
            with torch.no_grad():
                traced[key] = torch.jit.freeze(torch.jit.trace(fast, x, check_trace=False).eval())
        return traced[key](x)

    variants = [("eager", eager, 1, 1), ("eager", eager, 1, 2), ("eager batch 4", eager, 4, 1),
                ("fold (weight norm removed)", fast, 1, 1), ("trace+freeze (folded)", trace_fn, 1, 1),
                ("trace+freeze (folded)", trace_fn, 1, 2), ("trace+freeze batch 4", trace_fn, 4, 1)]
    if use_compile:
        compiled = torch.compile(fast, dynamic=False)
        variants.append(("torch.compile (folded)", compiled, 1, 1))
    rows, baseline = [], None
    for name, fn, batch, threads in variants:
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():  # warm-up: traces/compiles for this shape, excluded from timing
                fn(torch.from_numpy(np.stack(clips24[:batch]))[:, None])
            with Clock() as clock:
                codes = run(fn, batch)
            wall = clock.wall
        except Exception as exc:  # noqa: BLE001 (a variant that cannot run here is reported, not fatal)
            error = f"{type(exc).__name__}: {exc}"[:200]
            rows.append({"variant": name, "batch": batch, "threads": threads, "error": error})
            continue
        if baseline is None:
            baseline = (codes, wall)
        changed = float(np.mean([(a != b).float().mean().item() for a, b in zip(codes, baseline[0], strict=True)]))
        rows.append({"variant": name, "batch": batch, "threads": threads, "x_realtime": round(seconds / wall, 2),
                     "speedup": round(baseline[1] / wall, 2), "cpu_s_per_audio_s": round(clock.cpu / seconds, 4),
                     "codes_changed": round(changed, 5)})
    torch.set_num_threads(1)
    return rows


def pipeline_vs_raw(n_clips: int, seconds: float, codec_dir: str, tmp: Path, two_workers: bool, rounds: int) -> dict:
    """run_tokenize (in-process runner, 1 thread) on N/2 and N clips vs a plain loop over the same N clips
    (decode flac, resample, encode). The N/2 run separates the fixed start-up cost from the per-clip cost."""
    import io

    import librosa
    import soundfile as sf
    from conftest import write_audio_dir

    from cadenza import shards
    from cadenza.pipelines.tokenize import TokenizeConfig, fit_kmeans, run_tokenize
    from cadenza.tokenizers.acoustic import load_acoustic

    per_shard = 8
    clips = [(f"bench{i:06d}_00000000_00010000", music_like(32_000, seconds, i), f"a caption for clip {i}")
             for i in range(n_clips)]
    half = n_clips // 2
    dirs = {n: write_audio_dir(tmp / f"audio{n}", [clips[i:i + per_shard] for i in range(0, n, per_shard)])
            for n in (half, n_clips)}
    kmeans = str(tmp / "km.npz")
    fit_kmeans(dirs[n_clips], kmeans, clusters=64, progress=False)

    torch.set_num_threads(1)
    tok = load_acoustic("encodec_24khz", weights=codec_dir)
    tok.encode_one(np.zeros(int(seconds * 24_000), np.float32))  # trace once, outside the timing

    def raw_loop():
        for tar in shards.list_shards(f"{dirs[n_clips]}/shards"):
            for sample in shards.iter_tar_samples(tar):
                audio, sr = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
                tok.encode_one(librosa.resample(audio, orig_sr=sr, target_sr=24_000))

    # rounds interleave raw and pipeline runs; the minimum CPU time of each is kept (other jobs share the cores)
    raw_cpu, cpu = float("inf"), {half: float("inf"), n_clips: float("inf")}
    results: dict = {"clips": n_clips, "clip_seconds": seconds, "rounds": rounds, "all_cpu_s": []}
    for r in range(rounds):
        with Clock() as raw:
            raw_loop()
        raw_cpu = min(raw_cpu, raw.cpu)
        row = {"raw": raw.cpu}
        for n in (half, n_clips):
            cfg = TokenizeConfig(shards=dirs[n], out=str(tmp / f"out{n}-{r}"), codec_weights=codec_dir,
                                 kmeans=kmeans, progress=False, torch_threads=1)
            with Clock() as clock:
                run_tokenize(cfg)
            cpu[n] = min(cpu[n], clock.cpu)
            row[f"pipeline_{n}"] = clock.cpu
        results["all_cpu_s"].append(row)
    results["raw_x_realtime_per_core"] = n_clips * seconds / raw_cpu
    results["pipeline_cpu_overhead_vs_raw"] = cpu[n_clips] / raw_cpu - 1

    per_clip = (cpu[n_clips] - cpu[half]) / (n_clips - half)
    fixed = cpu[n_clips] - per_clip * n_clips
    raw_per_clip = raw_cpu / n_clips
    clips_musiccaps = MUSICCAPS_SECONDS / seconds
    results["marginal"] = {
        "pipeline_cpu_s_per_clip": per_clip, "raw_cpu_s_per_clip": raw_per_clip,
        "per_clip_overhead_vs_raw": per_clip / raw_per_clip - 1, "fixed_startup_cpu_s": fixed,
        # 2 dedicated cores = 2 single-thread workers; fixed start-up paid once per worker
        "musiccaps_minutes_2_cores": (clips_musiccaps * per_clip / 2 + fixed) / 60,
        "musiccaps_overhead_vs_raw": (clips_musiccaps * per_clip + fixed) / (clips_musiccaps * raw_per_clip) - 1,
    }
    if two_workers:
        cfg = TokenizeConfig(shards=dirs[n_clips], out=str(tmp / "out2w"), codec_weights=codec_dir, kmeans=kmeans,
                             progress=False, torch_threads=1)
        with Clock() as clock:
            run_tokenize(cfg, ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
        results["pipeline_2_workers"] = {"wall_s": clock.wall, "x_realtime": n_clips * seconds / clock.wall}
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=32, help="10 s clips for the pipeline comparison")
    ap.add_argument("--variant-clips", type=int, default=4, help="10 s clips per EnCodec variant")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--skip-variants", action="store_true")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved raw/pipeline rounds (min is kept)")
    ap.add_argument("--two-workers", action="store_true", help="also time 2 multi-processing Beam workers")
    args = ap.parse_args()
    import logging

    from cadenza.tokenizers.acoustic import load_acoustic, synthetic_calibration_audio

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    torch._logging.set_logs(dynamo=logging.ERROR, inductor=logging.ERROR)
    torch.set_num_threads(1)
    print(f"cpus={os.cpu_count()} load={os.getloadavg()} torch={torch.__version__}", flush=True)
    tok = load_acoustic("encodec_24khz", random_init=True, optimize="fold",
                        calibration=[music_like(24_000, 4.0, 100 + i) for i in range(4)]
                        + synthetic_calibration_audio(24_000, seconds=2.0, count=4))
    report: dict = {}
    if not args.skip_variants:
        clips24 = [music_like(24_000, 10.0, i) for i in range(args.variant_clips)]
        report["encodec_variants"] = encode_variants(clips24, tok, use_compile=not args.no_compile)
        for row in report["encodec_variants"]:
            print(json.dumps(row), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save(Path(tmp) / "codec")
        report["pipeline"] = pipeline_vs_raw(args.clips, 10.0, str(Path(tmp) / "codec"), Path(tmp), args.two_workers,
                                            args.rounds)
    print(json.dumps(report["pipeline"], indent=1), flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
