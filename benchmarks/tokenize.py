"""Tokenize speed: EnCodec CPU variants (speed and codes changed) and pipeline overhead vs a raw encode loop.

Run: PYTHONPATH=. python benchmarks/tokenize.py [--clips 24] [--variant-clips 4] [--no-compile]

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


def pipeline_vs_raw(n_clips: int, seconds: float, codec_dir: str, tmp: Path) -> dict:
    """run_tokenize (1 worker, 1 thread) vs a plain loop: decode flac, resample, encode (trace), same clips."""
    import io

    import librosa
    import soundfile as sf
    from conftest import write_audio_dir

    from cadenza import shards
    from cadenza.pipelines.tokenize import TokenizeConfig, fit_kmeans, run_tokenize
    from cadenza.tokenizers.acoustic import load_acoustic

    per_shard = 8
    clips = [(f"bench{i:06d}_00000000_00010000", music_like(32_000, seconds, i), f"caption {i}")
             for i in range(n_clips)]
    audio_dir = write_audio_dir(tmp / "audio", [clips[i:i + per_shard] for i in range(0, n_clips, per_shard)])
    kmeans = str(tmp / "km.npz")
    fit_kmeans(audio_dir, kmeans, clusters=64, progress=False)
    audio_seconds = n_clips * seconds

    torch.set_num_threads(1)
    tok = load_acoustic("encodec_24khz", weights=codec_dir)
    tok.encode_one(np.zeros(int(seconds * 24_000), np.float32))  # trace once, as the pipeline's worker does

    def raw_loop():
        for tar in shards.list_shards(f"{audio_dir}/shards"):
            for sample in shards.iter_tar_samples(tar):
                audio, sr = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
                tok.encode_one(librosa.resample(audio, orig_sr=sr, target_sr=24_000))

    with Clock() as raw:
        raw_loop()
    raw_wall = raw.wall
    results = {"clips": n_clips, "audio_seconds": audio_seconds, "raw_encode_loop_s": raw_wall,
               "raw_cpu_s": raw.cpu, "raw_x_realtime": audio_seconds / raw_wall,
               "raw_x_realtime_per_cpu_s": audio_seconds / raw.cpu}
    for label, text, args in [("pipeline_acoustic_only", "none", []), ("pipeline_full", "minilm", []),
                              ("pipeline_full_2workers", "minilm",
                               ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])]:
        cfg = TokenizeConfig(shards=audio_dir, out=str(tmp / label), codec_weights=codec_dir, kmeans=kmeans,
                             text=text, progress=False, torch_threads=1)
        try:
            with Clock() as clock:
                run_tokenize(cfg, args)
        except Exception as exc:  # noqa: BLE001
            results[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        wall = clock.wall
        results[label] = {"wall_s": wall, "x_realtime": audio_seconds / wall, "overhead_vs_raw": wall / raw_wall - 1,
                          "musiccaps_hours_at_this_rate": MUSICCAPS_SECONDS / (audio_seconds / wall) / 3600}
        if not args:  # in-process runner: CPU time covers all the work
            results[label].update({
                "cpu_s": clock.cpu, "cpu_overhead_vs_raw": clock.cpu / raw.cpu - 1,
                # two dedicated cores, one single-thread worker each
                "musiccaps_minutes_2_cores": MUSICCAPS_SECONDS * clock.cpu / audio_seconds / 2 / 60,
            })
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24, help="10 s clips for the pipeline comparison")
    ap.add_argument("--variant-clips", type=int, default=4, help="10 s clips per EnCodec variant")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--skip-variants", action="store_true")
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
        report["pipeline"] = pipeline_vs_raw(args.clips, 10.0, str(Path(tmp) / "codec"), Path(tmp))
    print(json.dumps(report["pipeline"], indent=1), flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
