"""Tokenize speed: EnCodec encoder candidates side by side, a worker's CPU per step, worker/thread layouts,
and pipeline overhead vs a raw encode loop.

Run (24 kHz architecture, random weights; then a trained codec for the code-change share):
  OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_tokenize.py --stages --layouts --optimize onnx
  OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_tokenize.py --codec CODEC_DIR
Candidates: eager fp32 (transformers' encode, the baseline), fold, trace, onnx (the `--optimize` variants;
onnx is skipped unless the `onnx` extra is installed), torch.compile and dynamic int8 (LSTM). For each:
speed against eager (median of interleaved rounds), x realtime per CPU core, the share of codes that
differ from eager fp32 one-thread codes, and whether two runs give identical codes. Without --codec it uses
the real 24 kHz EnCodec architecture with seeded random weights and k-means codebooks (speed does not
depend on weight values; the share of changed codes does, so measure it on a trained codec too). Every
figure is a ratio against a baseline in the same process. MusicCaps = 5,521 clips, 55,210 s of audio.
"""

from __future__ import annotations

import os
import sys

# this file is named like the stdlib `tokenize`: drop its folder from the path before anything imports that
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import importlib.util
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


def candidate_encoders(model, bandwidth: float) -> dict:
    """Every candidate encoder: the `--optimize` variants (onnx: None without the `onnx` extra), plus two
    that did not make it (torch.compile and dynamic int8; see cadenza.tokenizers.encodec_variants)."""
    from cadenza.tokenizers.encodec_variant_names import VARIANTS
    from cadenza.tokenizers.encodec_variants import plain_encoder, variant_encoder

    def make(variant: str):
        if variant == "onnx" and importlib.util.find_spec("onnxruntime") is None:
            return None
        return variant_encoder(model, bandwidth, variant)

    out = {v: (lambda v=v: make(v)) for v in VARIANTS}
    out["int8"] = lambda: int8_encoder(plain_encoder(model, bandwidth))
    # static graphs per input length; dynamo does not trace the LSTM, so the graph breaks around it
    out["compile"] = lambda: torch.compile(plain_encoder(model, bandwidth), dynamic=False)
    return out


def int8_encoder(plain):
    """torch's dynamic int8 quantization where it applies to EnCodec's encoder: its LSTM (it has no Linear;
    dynamic quantization does not cover Conv1d)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(plain, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)


def encode_variants(clips24: list[np.ndarray], model, bandwidth: float, names: list[str], rounds: int,
                    thread_counts: tuple[int, ...] = (1,)) -> list[dict]:
    """Each candidate encodes the same clips one at a time, `rounds` times, interleaved with the others
    (the machine is shared: the median of the per-round ratio to eager, same thread count, is kept).
    Codes are compared with eager fp32, one thread; run-to-run: round 1's codes against every later round's."""
    seconds = sum(len(c) for c in clips24) / 24_000
    makers = candidate_encoders(model, bandwidth)
    encoders, rows = {}, {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for name in names:
            key = (name, threads)
            row = rows[key] = {"variant": name, "threads": threads}
            try:
                with Clock() as warm:
                    fn = makers[name]()
                    if fn is None:
                        row["skipped"] = "onnxruntime not installed (pip install 'cadenza[onnx]')"
                        continue
                    with torch.inference_mode():  # compiles/traces for this length: timed apart
                        fn(torch.from_numpy(clips24[0])[None, None])
                encoders[key] = fn
                row["warmup_wall_s"] = round(warm.wall, 2)
            except Exception as exc:  # noqa: BLE001 (a candidate that cannot run here is reported, not fatal)
                row["error"] = f"{type(exc).__name__}: {exc}"[:200]
    timings: dict = {key: [] for key in encoders}
    codes: dict = {}
    for r in range(rounds):
        for key, fn in encoders.items():
            torch.set_num_threads(key[1])
            out = []
            with Clock() as clock, torch.inference_mode():
                for clip in clips24:
                    out.append(fn(torch.from_numpy(clip)[None, None])[:, 0].numpy())
            timings[key].append(clock)
            if r == 0:
                codes[key] = out
            else:
                same = all(np.array_equal(a, b) for a, b in zip(codes[key], out, strict=True))
                rows[key]["run_to_run_identical"] = rows[key].get("run_to_run_identical", True) and same
    reference = codes.get(("eager", 1))
    for key in encoders:
        row, eager = rows[key], timings.get(("eager", key[1])) or timings[("eager", 1)]
        ratios = [e.wall / t.wall for e, t in zip(eager, timings[key], strict=True)]
        cpu_ratios = [e.cpu / t.cpu for e, t in zip(eager, timings[key], strict=True)]
        cpu = float(np.median([t.cpu for t in timings[key]]))
        row.update({
            "speed_vs_eager": round(float(np.median(ratios)), 2),
            "cpu_speed_vs_eager": round(float(np.median(cpu_ratios)), 2),
            "x_realtime_per_core": round(seconds / cpu, 2),  # audio s per CPU s: robust to other jobs
            "x_realtime_wall": round(seconds / float(np.median([t.wall for t in timings[key]])), 2),
        })
        if reference is not None:
            changed = np.concatenate([(a != b).ravel() for a, b in zip(codes[key], reference, strict=True)])
            first = np.concatenate([(a[0] != b[0]).ravel() for a, b in zip(codes[key], reference, strict=True)])
            row.update({"codes_changed": round(float(changed.mean()), 5),
                        "first_codebook_changed": round(float(first.mean()), 5)})
    torch.set_num_threads(1)
    return list(rows.values())


def stage_shares(model_dir: str, optimize: str, seconds: float, n: int) -> dict:
    """CPU per clip of each step of a tokenize worker, in the same pass over one decoded clip (as
    TokenizeBundle does): flac decode, resample for the codec, semantic features + k-means, acoustic
    encode, two MiniLM embeddings. Semantic features already share the decode; this shows what is left."""
    import io

    import librosa
    import soundfile as sf

    from cadenza.tokenizers.acoustic_loading import load_acoustic
    from cadenza.tokenizers.semantic import MfccFeatures
    from cadenza.tokenizers.text import load_text

    tok = load_acoustic("encodec_24khz", weights=model_dir, optimize=optimize)
    feats, text = MfccFeatures(), load_text("minilm")
    clips = []
    for i in range(n):
        buf = io.BytesIO()
        sf.write(buf, music_like(32_000, seconds, 500 + i), 32_000, format="FLAC", subtype="PCM_16")
        clips.append(buf.getvalue())
    cpu = dict.fromkeys(("decode", "resample", "semantic", "acoustic", "text"), 0.0)

    def lap(step: str, start: list[float]) -> None:
        now = time.process_time()
        cpu[step] += now - start[0]
        start[0] = now

    for i, flac in enumerate([clips[0], *clips]):  # the first pass warms every step up and is not counted
        if i == 1:
            cpu.update(dict.fromkeys(cpu, 0.0))
        start = [time.process_time()]
        audio, sr = sf.read(io.BytesIO(flac), dtype="float32")
        lap("decode", start)
        audio24 = librosa.resample(audio, orig_sr=sr, target_sr=24_000)
        lap("resample", start)
        feats(audio, sr)
        lap("semantic", start)
        tok.encode_one(audio24)
        lap("acoustic", start)
        text.encode_one("a caption of a clip, about this long, naming instruments and mood")
        text.encode_one("guitar, drums, upbeat")
        lap("text", start)
    total = sum(cpu.values())
    return {"optimize": optimize, "clips": n, "cpu_s_per_clip": round(total / n, 4),
            "x_realtime_per_core": round(n * seconds / total, 2),
            "share": {k: round(v / total, 4) for k, v in cpu.items()}}


def _layout_worker(args) -> float:
    """One worker process: load the codec, warm up, then encode its clips; returns its encode wall time."""
    model_dir, optimize, threads, clips = args
    torch.set_num_threads(threads)
    from cadenza.tokenizers.acoustic_loading import load_acoustic

    tok = load_acoustic("encodec_24khz", weights=model_dir, optimize=optimize)
    tok.encode_one(clips[0])
    start = time.perf_counter()
    for clip in clips:
        tok.encode_one(clip)
    return time.perf_counter() - start


def layouts(model_dir: str, optimize: str, clips24: list[np.ndarray]) -> list[dict]:
    """Worker/thread layouts on the 2 cores: 1 process x 2 threads against 2 processes x 1 thread
    (half the clips each), and 1 x 1 as the base. Encode wall time only (start-up and warm-up excluded)."""
    import multiprocessing as mp

    seconds = sum(len(c) for c in clips24) / 24_000
    ctx = mp.get_context("spawn")
    rows = []
    for procs, threads in ((1, 1), (1, 2), (2, 1)):
        parts = [(model_dir, optimize, threads, clips24[i::procs]) for i in range(procs)]
        with ctx.Pool(procs) as pool:
            walls = pool.map(_layout_worker, parts)
        wall = max(walls)  # workers start their clock after warm-up; the slower one finishes the job
        rows.append({"layout": f"{procs} proc x {threads} thread", "optimize": optimize,
                     "x_realtime": round(seconds / wall, 2)})
    base = rows[0]["x_realtime"]
    for row in rows:
        row["speed_vs_1x1"] = round(row["x_realtime"] / base, 2)
    return rows


def pipeline_vs_raw(n_clips: int, seconds: float, codec_dir: str, tmp: Path, two_workers: bool, rounds: int,
                    optimize: str) -> dict:
    """run_tokenize (in-process runner, 1 thread) on N/2 and N clips vs a plain loop over the same N clips
    (decode flac, resample, encode). The N/2 run separates the fixed start-up cost from the per-clip cost."""
    import io

    import librosa
    import soundfile as sf
    from conftest import write_audio_dir

    from cadenza.formats import shards
    from cadenza.pipelines.tokenize.config import TokenizeConfig
    from cadenza.pipelines.tokenize.run import run_tokenize
    from cadenza.pipelines.tokenize.setup import fit_kmeans
    from cadenza.tokenizers.acoustic_loading import load_acoustic

    per_shard = 8
    clips = [(f"bench{i:06d}_00000000_00010000", music_like(32_000, seconds, i), f"a caption for clip {i}")
             for i in range(n_clips)]
    half = n_clips // 2
    dirs = {n: write_audio_dir(tmp / f"audio{n}", [clips[i:i + per_shard] for i in range(0, n, per_shard)])
            for n in (half, n_clips)}
    kmeans = str(tmp / "km.npz")
    fit_kmeans(dirs[n_clips], kmeans, clusters=64, progress=False)

    torch.set_num_threads(1)
    tok = load_acoustic("encodec_24khz", weights=codec_dir, optimize=optimize)
    tok.encode_one(np.zeros(int(seconds * 24_000), np.float32))  # trace/compile once, outside the timing

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
                                 kmeans=kmeans, progress=False, torch_threads=1,
                                 optimize=optimize)
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
                             progress=False, torch_threads=1, optimize=optimize)
        with Clock() as clock:
            run_tokenize(cfg, ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
        results["pipeline_2_workers"] = {"wall_s": clock.wall, "x_realtime": n_clips * seconds / clock.wall}
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codec", help="a trained codec dir (`cadenza codec train` output); default: the 24 kHz "
                    "EnCodec architecture with seeded random weights and k-means codebooks")
    ap.add_argument("--variants", default="eager,fold,trace,compile,int8,onnx")
    ap.add_argument("--variant-clips", type=int, default=6, help="10 s clips per candidate encoder")
    ap.add_argument("--threads", default="1", help="thread counts to time every candidate at, e.g. 1,2")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are kept)")
    ap.add_argument("--optimize", default="trace", help="variant for --stages, --layouts and --pipeline")
    ap.add_argument("--stages", action="store_true", help="CPU share of each step of a tokenize worker")
    ap.add_argument("--layouts", action="store_true", help="1 proc x 2 threads against 2 procs x 1 thread")
    ap.add_argument("--pipeline", action="store_true", help="run_tokenize against a raw encode loop")
    ap.add_argument("--clips", type=int, default=32, help="10 s clips for --pipeline")
    ap.add_argument("--two-workers", action="store_true", help="with --pipeline: 2 multi-processing workers")
    args = ap.parse_args()
    import logging

    from cadenza.tokenizers.acoustic_loading import load_acoustic
    from cadenza.tokenizers.random_codec import synthetic_calibration_audio

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    torch._logging.set_logs(dynamo=logging.ERROR, inductor=logging.ERROR)
    torch.set_num_threads(1)
    print(f"cpus={os.cpu_count()} load={os.getloadavg()} torch={torch.__version__}", flush=True)
    if args.codec:
        tok = load_acoustic("encodec_24khz", weights=args.codec, optimize="eager")
    else:
        tok = load_acoustic("encodec_24khz", random_init=True, optimize="eager",
                            calibration=[music_like(24_000, 4.0, 100 + i) for i in range(4)]
                            + synthetic_calibration_audio(24_000, seconds=2.0, count=4))
    print(f"codec: {args.codec or 'encodec_24khz architecture, random weights'}, "
          f"{sum(p.numel() for p in tok.model.encoder.parameters()) / 1e6:.1f} M encoder parameters, "
          f"{tok.num_codebooks} codebooks", flush=True)
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        codec_dir = args.codec or str(Path(tmp) / "codec")
        if not args.codec:
            tok.save(codec_dir)
        if args.variants:
            clips24 = [music_like(24_000, 10.0, i) for i in range(args.variant_clips)]
            threads = tuple(int(t) for t in args.threads.split(","))
            report["encoders"] = encode_variants(clips24, tok.model, tok.bandwidth, args.variants.split(","),
                                                 args.rounds, threads)
            for row in report["encoders"]:
                print(json.dumps(row), flush=True)
        if args.stages:
            report["stages"] = stage_shares(codec_dir, args.optimize, 10.0, 4)
            print(json.dumps(report["stages"]), flush=True)
        if args.layouts:
            clips24 = [music_like(24_000, 10.0, 200 + i) for i in range(8)]
            report["layouts"] = layouts(codec_dir, args.optimize, clips24)
            for row in report["layouts"]:
                print(json.dumps(row), flush=True)
        if args.pipeline:
            report["pipeline"] = pipeline_vs_raw(args.clips, 10.0, codec_dir, Path(tmp), args.two_workers,
                                                args.rounds, args.optimize)
            print(json.dumps(report["pipeline"], indent=1), flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
