"""Generation quality on the demo dataset for a fixed budget: does the tiny model follow its captions?

Builds the demo dataset, ingests it over loopback, trains the codec (cadenza.codec.trainer) and
tokenizes with it, audits, trains the tiny model, then evaluates it next to the three validity
controls (step 0, shuffled captions, held-out reconstructions as samples). Prints caption gain per
stage with CIs, adherence against chance (labels: the demo's styles), KAD against the reference
floor, the mainstream-pull flags and the wall time of every stage.

    PYTHONPATH=. python benchmarks/bench_generation.py --out /tmp/bench-gen [--clips 56] [--steps 600]

With --random-codec the chain runs on the random-init codec instead and says that its audio metrics
mean little there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cadenza import stages as orch
from cadenza.demo import run as demo_run
from cadenza.demo.dataset import MANIFEST_NAME, build_demo_dataset


class Clock:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs) -> Any:
        t = time.perf_counter()
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        out = fn(*args, **kwargs)
        self.stages[name] = time.perf_counter() - t
        print(f"[{name}] {self.stages[name]:.1f} s", file=sys.stderr, flush=True)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--clips", type=int, default=56)
    ap.add_argument("--heldout-shards", type=int, default=2)
    ap.add_argument("--steps", type=int, default=600, help="tiny-model training steps")
    ap.add_argument("--codec-steps", type=int, default=None, help="codec training steps (default: the demo's)")
    ap.add_argument("--samples", type=int, default=64, help="held-out captions to generate from")
    ap.add_argument("--embeddings", default="mfcc", help="mfcc | encodec | hf:PATH")
    ap.add_argument("--random-codec", action="store_true", help="skip codec training (audio metrics meaningless)")
    args = ap.parse_args()

    from cadenza.evaluation.evaluate import EvalConfig, load_labels
    from cadenza.evaluation.validity import run_validity
    from cadenza.testing.mediaserver import MediaServer

    root = Path(args.out).resolve()
    d = orch.stage_dirs(root)
    clock = Clock()
    t0 = time.perf_counter()
    ds = clock.run("dataset", build_demo_dataset, root / "demo-data", n_clips=args.clips, progress=False)
    plan = demo_run.DemoPlan(root, None, n_clips=args.clips)
    with MediaServer(ds.media_dir) as server:
        url = server.url_template(ds.audio_format)
        clock.run("ingest", orch.ingest, str(ds.csv_path), d["audio"], url_template=url,
                  shard_size=demo_run._shard_size(plan), ontology=str(ds.ontology_path),
                  beam=orch.beam_args("DirectRunner", demo_run.DEMO_BEAM_OPTIONS))
    codec_dir = None
    beam = orch.beam_args("DirectRunner", demo_run.DEMO_BEAM_OPTIONS)
    if not args.random_codec:  # as the demo does: a codec trained here, on the demo's own audio
        clock.run("codec", orch.codec_train, d["audio"], d["codec"], preset=demo_run.DEMO_CODEC_PRESET,
                  steps=args.codec_steps, holdout_shards=1)
        codec_dir = d["codec"]
    else:
        print("NOTE: random-init codec: its decodes hardly differ, so KAD/FD/adherence on audio mean little",
              file=sys.stderr)
    clock.run("tokenize", orch.tokenize, d["audio"], d["tokens"], codec_weights=codec_dir,
              random_init=codec_dir is None, clusters=demo_run.DEMO_SEMANTIC_CLUSTERS, beam=beam)
    weights = f"{d['audit']}/weights.json"
    clock.run("audit", orch.audit, str(ds.csv_path), d["audit"], ontology=str(ds.ontology_path),
              audio_dir=d["audio"], weights_out=weights)
    split = orch.split_tokens(d["tokens"], d["split"], heldout_shards=args.heldout_shards)
    clock.run("train", orch.train, split["train"], d["run"], preset="tiny", steps=args.steps, weights=weights)
    cfg = EvalConfig(num_samples=args.samples, write_wavs=False, embeddings=args.embeddings)
    res = clock.run("evaluate x4", run_validity, d["run"], split["heldout"], root / "validity", config=cfg,
                    audit_dir=d["audit"], labels=load_labels(str(ds.root / MANIFEST_NAME)),
                    codec_weights=codec_dir, codec_random_init=codec_dir is None)
    total = time.perf_counter() - t0

    print(f"demo data: {args.clips} clips, {split['heldout_shards']} held-out shards; tiny model {args.steps} steps; "
          f"codec: {'trained' if codec_dir else 'RANDOM-INIT (audio metrics meaningless)'}")
    print(f"{'model':10s} {'gain sem [95% CI]':>26s} {'gain ac [95% CI]':>26s} {'adherence [CI] / chance':>30s} "
          f"{'KAD [CI] / floor':>32s}  flagged")
    for name, r in res["models"].items():
        def ci(key: str, r=r) -> str:
            lo, hi = r.get(key) or (float("nan"), float("nan"))
            return f"[{lo:.3f}, {hi:.3f}]"

        print(f"{name:10s} {r['caption_gain_semantic']:8.3f} {ci('caption_gain_semantic_ci95'):>17s} "
              f"{r['caption_gain_acoustic']:8.3f} {ci('caption_gain_acoustic_ci95'):>17s} "
              f"{(r['adherence'] or 0):6.3f} {ci('adherence_ci95'):>16s} / {(r['chance'] or 0):.3f} "
              f"{(r['kad'] or 0):8.4f} {ci('kad_ci95'):>18s} / {(r['kad_floor'] or 0):.4f}  "
              f"{','.join(r['mainstream_flagged'] or []) or '-'}")
    t = res["models"]["trained"]
    if t["chance"]:
        print(f"trained adherence = {t['adherence'] / t['chance']:.2f}x chance on {args.embeddings} embeddings of "
              f"the decoded audio; on semantic-token histograms (semantic stage only): "
              f"{t['adherence_semantic_tokens']:.3f} = {t['adherence_semantic_tokens'] / t['chance']:.2f}x chance")
    print("verdicts: " + ", ".join(f"{k} {'separates' if v['separates'] else 'DOES NOT separate'}"
                                   for k, v in res["verdicts"].items()))
    print("wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.stages.items())
          + f"; total {total:.0f} s")
    (root / "bench_generation.json").write_text(json.dumps({"stages_s": clock.stages, "total_s": total, **res},
                                                           indent=1, default=float))


if __name__ == "__main__":
    main()
