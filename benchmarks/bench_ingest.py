"""Ingest throughput: the Beam pipeline against a plain sequential loop, in the same process.

Both do the same work per clip (yt-dlp fetch over loopback, ffmpeg decode, clip, mono, resample,
quality stats, FLAC encode; `cadenza.pipelines.ingest.clipjob.process_clip`). Two cases:

- CPU-bound: the loopback server answers at once; the pipeline can only win by using the cores.
- Network-bound: every request waits `--latency` seconds (about what YouTube costs); the pipeline
  must overlap the waits (threads inside each worker, workers across shards).

    python benchmarks/bench_ingest.py [--clips 100] [--latency 0.3] [--seq-clips 20] [--concurrency 16]

Each pipeline run is timed whole, from run_ingest() to its manifest (CSV, planning, Beam job
start-up including its worker processes, writing shards), apache_beam having been imported once.

The sequential loop of the network-bound case runs on the first --seq-clips clips only (it is slow
by design); clips/s is a rate, so the ratio stays comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from cadenza.common.ffmpeg import ensure_ffmpeg
from cadenza.musiccaps import load_musiccaps
from cadenza.pipelines.ingest.clipjob import process_clip
from cadenza.pipelines.ingest.fetch import Fetcher
from cadenza.pipelines.ingest.run import IngestConfig, run_ingest
from cadenza.testing.mediaserver import MediaServer, write_media

HEADER = "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval"


def make_inputs(root: Path, n: int) -> Path:
    """n clips: 10 s windows of 30 s m4a files (five distinct recordings, copied under n ytids)."""
    media = root / "media"
    for seed in range(5):
        write_media(media, f"src{seed:08d}", 30.0, ("m4a",), seed=seed)
    lines = [HEADER]
    for i in range(n):
        ytid = f"bench{i:06d}"
        shutil.copy(media / f"src{i % 5:08d}.m4a", media / f"{ytid}.m4a")
        start = (i * 7) % 20
        lines.append(f'{ytid},{start},{start + 10},/m/04rlf,"[\'bench\']","Benchmark clip {i}.",1,False,False')
    csv = root / "bench.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def sequential(csv: Path, template: str, n: int) -> float:
    clips = load_musiccaps(csv).clips[:n]
    job = IngestConfig(csv=str(csv), out="", source_url_template=template).job()
    with Fetcher(job.fetch) as fetcher:  # what each pipeline worker keeps too
        t0 = time.perf_counter()
        for c in clips:
            r = process_clip(c, job, fetcher=fetcher)
            if r.failure is not None:
                raise RuntimeError(f"benchmark clip failed: {r.failure}")
        return len(clips) / (time.perf_counter() - t0)


def pipeline(csv: Path, template: str, out: Path, shard_size: int, concurrency: int, beam_args: list[str]) -> float:
    cfg = IngestConfig(csv=str(csv), out=str(out), source_url_template=template, shard_size=shard_size,
                       max_concurrent_fetches=concurrency, progress=False)
    t0 = time.perf_counter()
    m = run_ingest(cfg, beam_args)
    elapsed = time.perf_counter() - t0
    if m["clips_written"] != m["rows_valid"]:
        raise RuntimeError(f"benchmark pipeline lost clips: {m['failures_by_category']}")
    return m["clips_written"] / elapsed


# (label, shard size, Beam args): the default local runner, and one process with fetch threads only
RUNNERS = [
    ("DirectRunner multi_processing x2 (default)", 50, []),
    ("DirectRunner in_memory (threads only)", 100, ["--direct_running_mode=in_memory"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--seq-clips", type=int, default=20, help="clips for the network-bound sequential loop")
    ap.add_argument("--concurrency", type=int, default=16, help="max concurrent fetches per worker")
    ap.add_argument("--cases", default="cpu_bound,network_bound")
    a = ap.parse_args()
    ensure_ffmpeg()
    import apache_beam  # noqa: F401 (a one-time import per process, not part of any run)
    root = Path(tempfile.mkdtemp(prefix="cadenza-bench-ingest-"))
    results = {"cores": os.cpu_count(), "clips": a.clips}
    try:
        csv = make_inputs(root, a.clips)
        for case, latency, n_seq in (("cpu_bound", 0.0, a.clips), ("network_bound", a.latency, a.seq_clips)):
            if case not in a.cases.split(","):
                continue
            with MediaServer(root / "media", latency_s=latency) as srv:
                template = srv.url_template("m4a")
                seq = sequential(csv, template, n_seq)
                results[case] = {"latency_s": latency, "sequential_clips_per_s": round(seq, 3)}
                print(f"{case}: latency {latency:.2f} s, sequential loop {seq:6.2f} clips/s", flush=True)
                for runner, shard_size, beam_args in RUNNERS:
                    out = root / f"out-{case}-{runner}"
                    par = pipeline(csv, template, out, shard_size, a.concurrency, beam_args)
                    results[case][runner] = {"clips_per_s": round(par, 3), "ratio": round(par / seq, 2)}
                    print(f"  pipeline {runner:<38} {par:6.2f} clips/s  ratio {par / seq:5.2f}x", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
