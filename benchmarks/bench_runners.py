"""Tokenize on the DirectRunner, Dask (a LocalCluster) and the PortableRunner (external SDK worker pool).

Same shards, same tokenizers (fitted once, then found in each output dir as a resumed run finds them),
so each timing is the Beam pass: job start, workers importing torch and loading the models, encoding,
the GroupByKey, writing. Dask runs twice on the same cluster: cold workers, then warm ones (whose
processes have the imports and models already). Every run's token shards must equal the Direct run's.

    python benchmarks/bench_runners.py [--shards 4] [--clips 4] [--seconds 4]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from cadenza.formats import shards, storage
from cadenza.pipelines.tokenize.config import TokenizeConfig
from cadenza.pipelines.tokenize.run import run_tokenize
from cadenza.testing.mediaserver import synth_audio


def make_audio(root: Path, n_shards: int, clips: int, seconds: float) -> str:
    row = 0
    for i in range(n_shards):
        samples = []
        for _ in range(clips):
            row += 1
            key = f"bench{row:06d}_00000000_{int(seconds * 1000):08d}"
            buf = io.BytesIO()
            sf.write(buf, synth_audio(seconds, 32_000, seed=row, channels=1)[0], 32_000, format="FLAC")
            meta = {"ytid": key[:11], "key": key, "row": row, "caption": f"a chord {row}", "sample_rate": 32_000}
            samples.append({"__key__": key, "flac": buf.getvalue(), "txt": meta["caption"], "json": json.dumps(meta)})
        shards.write_shard(str(root / "shards" / shards.shard_name("audio", i)), samples, {"samples": clips})
    storage.write_json_atomic(str(root / "manifest.json"), {"kind": "audio", "clips_written": row})
    return str(root)


def timed_run(audio: str, seeded_from: Path | None, out: Path, beam: list[str]) -> float:
    if seeded_from is not None:
        out.mkdir()
        shutil.copy(seeded_from / "kmeans.npz", out / "kmeans.npz")
        shutil.copytree(seeded_from / "codec", out / "codec")
    config = TokenizeConfig(shards=audio, out=str(out), codec_random_init=True, codec_small=True, clusters=8,
                            progress=False, batch_size=4)
    start = time.perf_counter()
    run_tokenize(config, beam)
    return time.perf_counter() - start


def tars(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.tar"))}


def worker_pool() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return pool, f"localhost:{port}"
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("worker pool did not start")


def main() -> None:
    from distributed import LocalCluster

    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = Path(tempfile.mkdtemp(prefix="bench-runners-"))
    try:
        audio = make_audio(root / "audio", args.shards, args.clips, args.seconds)
        run_tokenize(TokenizeConfig(shards=audio, out=str(root / "fit"), codec_random_init=True, codec_small=True,
                                    clusters=8, progress=False, batch_size=4))  # tokenizers, and imports, once
        fit = root / "fit"
        times = {"direct": timed_run(audio, fit, root / "direct", ["--runner", "DirectRunner"])}
        want = tars(root / "direct")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, env={"OMP_NUM_THREADS": "1"}) as cluster:
            dask = ["--runner", "DaskRunner", "--dask_client_address", cluster.scheduler_address]
            times["dask, cold workers"] = timed_run(audio, fit, root / "dask-cold", dask)
            times["dask, warm workers"] = timed_run(audio, fit, root / "dask-warm", dask)
        pool, endpoint = worker_pool()
        try:
            times["portable, worker pool"] = timed_run(audio, fit, root / "portable", [
                "--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "EXTERNAL",
                "--environment_config", endpoint])
        finally:
            os.killpg(pool.pid, signal.SIGTERM)
            pool.wait()
        for name, out in (("dask, cold workers", "dask-cold"), ("dask, warm workers", "dask-warm"),
                          ("portable, worker pool", "portable")):
            assert tars(root / out) == want, f"{name}: token shards differ from the DirectRunner's"
        clips = args.shards * args.clips
        print(f"tokenize {clips} clips of {args.seconds:g} s in {args.shards} shards; tokens identical on every runner")
        print(f"{'runner':<24}{'seconds':>9}{'x direct':>10}")
        for name, seconds in times.items():
            print(f"{name:<24}{seconds:>9.1f}{seconds / times['direct']:>10.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
