"""Loader throughput vs raw tarfile iteration, and training tokens/s of the tiny and small configs.

    PYTHONPATH=. python benchmarks/bench_train.py [--clips 1200] [--threads 2]

Shards have MusicCaps-like shapes: 10 s clips, semantic 50 Hz (500 tokens), EnCodec 24 kHz at 6 kbps
(8 codebooks x 750 frames), 384-dim caption embeddings.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cadenza.formats.shards import list_shards, shard_name, write_shard
from cadenza.formats.storage import write_json_atomic
from cadenza.formats.token_spec import TokenSpec, load_token_dir
from cadenza.training.data import LoaderConfig, TokenStream, make_loader
from cadenza.training.trainer import TrainConfig, train

SPEC = {"semantic": (50.0, 1024, 1), "acoustic": (75.0, 1024, 8)}


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def make_realistic_tokens(out: Path, clips: int, per_shard: int = 200, seconds: float = 10.0) -> None:
    rng = np.random.default_rng(0)
    fps = {"semantic": "bench-sem", "acoustic": "bench-ac", "text": "bench-text"}
    names = []
    for s in range(0, clips, per_shard):
        samples = []
        for i in range(s, min(clips, s + per_shard)):
            key = f"bench{i:06d}_00000000_00010000"
            samples.append(
                {
                    "__key__": key,
                    "semantic.npy": _npy(rng.integers(0, 1024, int(50 * seconds)).astype(np.int16)),
                    "acoustic.npy": _npy(rng.integers(0, 1024, (8, int(75 * seconds))).astype(np.int16)),
                    "text.npy": _npy(rng.standard_normal(384).astype(np.float16)),
                    "json": json.dumps({"ytid": key[:11], "key": key, "tokenizers": fps}),
                    "txt": "a benchmark caption",
                }
            )
        name = shard_name("tokens", s // per_shard)
        write_shard(str(out / "shards" / name), samples, {"samples": len(samples)})
        names.append(name)
    tok = {
        stage: {"name": "bench", "frame_rate": r, "vocab_size": v, "num_codebooks": k, "fingerprint": fps[stage]}
        for stage, (r, v, k) in SPEC.items()
    }
    tok["text"] = {"name": "bench", "dim": 384, "fingerprint": fps["text"]}
    write_json_atomic(str(out / "manifest.json"), {"kind": "tokens", "tokenizers": tok, "shards": names})


def raw_tarfile(shards: list[str], decode: bool) -> int:
    n = 0
    for path in shards:
        with tarfile.open(path, mode="r|") as tar:
            for m in tar:
                data = tar.extractfile(m).read()
                if m.name.endswith(".json"):
                    n += 1
                    if decode:
                        json.loads(data)
                elif decode and m.name.endswith(".npy"):
                    np.load(io.BytesIO(data), allow_pickle=False)
    return n


def loader(shards: list[str], spec: TokenSpec, workers: int = 0) -> int:
    cfg = LoaderConfig(batch_size=16, crop_seconds=10.0, train=False, num_workers=workers)
    stream = TokenStream(shards, spec, cfg)
    return sum(len(b["keys"]) for b in make_loader(stream))


def best_rate(fn, repeats: int = 3) -> float:
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=1200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small-steps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens"
        make_realistic_tokens(tokens, args.clips)
        manifest, shards = load_token_dir(str(tokens))
        spec = TokenSpec.from_manifest(manifest)
        raw = best_rate(lambda: raw_tarfile(shards, decode=False))
        raw_dec = best_rate(lambda: raw_tarfile(shards, decode=True))
        print(f"raw tarfile, bytes only: {raw:,.0f} samples/s")
        print(f"raw tarfile + np.load/json of every member: {raw_dec:,.0f} samples/s")
        for workers in (0, 2):
            ours = best_rate(lambda w=workers: loader(shards, spec, w))
            print(
                f"loader, {workers} workers (decode, check, crop, pad, collate): {ours:,.0f} samples/s -> "
                f"{ours / raw:.2f}x raw bytes, {ours / raw_dec:.2f}x raw + decode"
            )
        assert len(list_shards(str(tokens / "shards"))) == len(shards)

        for size, steps, batch, crop in (("tiny", 20, 8, 10.0), ("small", args.small_steps, 2, 10.0)):
            run = Path(tmp) / f"run-{size}"
            cfg = TrainConfig.preset(
                size,
                str(tokens),
                str(run),
                steps=steps,
                batch_size=batch,
                crop_seconds=crop,
                log_every=steps,
                ckpt_every=10**9,
                warmup_steps=1,
            )
            t = time.perf_counter()
            summary = train(cfg)
            wall = time.perf_counter() - t
            line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
            print(
                f"train {size}: {summary['params'] / 1e6:.2f} M params, batch {batch} x {crop:.0f} s, "
                f"{line['tokens_per_s']:,.0f} tokens/s ({steps} steps in {wall:.1f} s, {args.threads} threads)"
            )


if __name__ == "__main__":
    main()
