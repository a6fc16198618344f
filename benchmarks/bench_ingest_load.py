"""Ingest under load: 2,000 rows against the loopback server with realistic latency and a 5% failure mix.

Every row must be accounted for (a sample in a shard or a failure record, never both, never neither),
and memory must stay flat: the peak RSS of the 2,000-row run is reported against a 200-row run made
by the same script, each in a fresh child process (so one run's heap cannot hide in the other's).

    python benchmarks/bench_ingest_load.py [--rows 2000] [--baseline-rows 200] [--latency 0.05 0.3] [--json]

One short synthetic m4a is served under every ytid (MediaServer's alias), so the run measures the
pipeline, not media generation. Every 20th row misbehaves, cycling through 404, 500, 429-then-200 and
a truncated body: 5% of rows, of which the 429s land after a retry.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HEADER = "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval"
FAULT_CYCLE = ("404", "500", "429-then-200", "truncated")
SOURCE = "loadsource0"


def fault_for_row(i: int) -> str | None:
    return FAULT_CYCLE[(i // 20) % len(FAULT_CYCLE)] if i % 20 == 0 else None


def write_inputs(root: Path, rows: int) -> tuple[Path, dict[str, str]]:
    lines, faults = [HEADER], {}
    for i in range(rows):
        ytid = f"load{i:07d}"
        if (fault := fault_for_row(i)) is not None:
            faults[ytid] = fault
        lines.append(f'{ytid},0,5,/m/04rlf,"[\'load\']","Load clip {i}.",1,False,False')
    csv = root / f"load-{rows}.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv, faults


def one_run(rows: int, latency: tuple[float, float], work: Path) -> dict:
    """In this process: serve, ingest, account for every row. Returns the figures."""
    from cadenza.formats.failures import read_failures
    from cadenza.formats.shards import iter_tar_samples, list_shards, stats_path
    from cadenza.formats.storage import read_json
    from cadenza.pipelines.ingest.run import IngestConfig, run_ingest
    from cadenza.testing.mediaserver import MediaServer, write_media

    media = work / "media"
    if not (media / f"{SOURCE}.m4a").exists():
        write_media(media, SOURCE, 6.0, ("m4a",), seed=7)
    csv, faults = write_inputs(work, rows)
    out = work / f"out-{rows}"
    with MediaServer(media, alias=SOURCE, latency_s=latency, faults=faults) as srv:
        cfg = IngestConfig(csv=str(csv), out=str(out), source_url_template=srv.url_template("m4a"), shard_size=100,
                           max_concurrent_fetches=16, max_attempts=3, backoff_base_s=0.05, socket_timeout_s=10,
                           progress=False)
        t0 = time.perf_counter()
        manifest = run_ingest(cfg)
        wall = time.perf_counter() - t0
        requests = sum(srv.requests.values())

    seen: Counter[int] = Counter()
    for tar in list_shards(str(out / "shards")):
        for s in iter_tar_samples(tar):
            seen[json.loads(s["json"])["row"]] += 1
    failures = read_failures(str(out / "failures"))
    seen.update(f.row for f in failures)
    for tar in list_shards(str(out / "shards")):  # pending: left by session-side failures for the next run
        seen.update(int(key[4:11]) + 1 for key in read_json(stats_path(tar)).get("pending", {}))  # load{i:07d}
    expected = set(range(1, rows + 1))
    self_rss, child_rss = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                                         resource.RUSAGE_CHILDREN))
    return {
        "rows_in": manifest["rows_in"],
        "clips_written": manifest["clips_written"],
        "failures_by_category": manifest["failures_by_category"],
        "pending_by_category": manifest["pending_by_category"],
        "rows_lost": len(expected - set(seen)),
        "rows_duplicated": sum(1 for n in seen.values() if n > 1),
        "rows_unknown": len(set(seen) - expected),
        "faults_injected": dict(Counter(faults.values())),
        "http_requests": requests,
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall, 1),
        "peak_rss_mb": round(self_rss / 1024, 1),  # Linux: KiB
        "peak_rss_children_mb": round(child_rss / 1024, 1),
    }


def run_in_child(rows: int, latency: tuple[float, float], work: Path) -> dict:
    """A fresh interpreter per run: its peak RSS is its own (and its Beam workers')."""
    # loaded by file path: putting benchmarks/ on sys.path would shadow the stdlib's tokenize
    code = ("import importlib.util, json, sys; from pathlib import Path; "
            "spec = importlib.util.spec_from_file_location('ingest_load', sys.argv[4]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print('RESULT ' + json.dumps(m.one_run(int(sys.argv[1]), (float(sys.argv[2]), float(sys.argv[3])), "
            "Path(sys.argv[5]))))")
    res = subprocess.run([sys.executable, "-c", code, str(rows), str(latency[0]), str(latency[1]),
                          str(Path(__file__).resolve()), str(work)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    if res.returncode != 0:
        raise SystemExit(f"{rows}-row run failed:\n{res.stderr[-4000:]}")
    return json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT "))[7:])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--baseline-rows", type=int, default=200, help="0: no baseline run")
    ap.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.3), metavar=("LOW", "HIGH"))
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cadenza-load-") as tmp:
        runs = {}
        if args.baseline_rows:
            runs["baseline"] = run_in_child(args.baseline_rows, tuple(args.latency), Path(tmp))
        runs["load"] = run_in_child(args.rows, tuple(args.latency), Path(tmp))
    if "baseline" in runs:
        b, lo = runs["baseline"], runs["load"]
        # a child forked from a big parent reports the parent's pages too, so the larger of the two is the peak
        runs["rss_ratio_load_vs_baseline"] = round(
            max(lo["peak_rss_mb"], lo["peak_rss_children_mb"]) / max(b["peak_rss_mb"], b["peak_rss_children_mb"]), 2)
    if args.json:
        print(json.dumps(runs))
    else:
        for name, r in runs.items():
            print(f"{name}: {r}")
    lost = sum(r["rows_lost"] + r["rows_duplicated"] for r in runs.values() if isinstance(r, dict))
    if lost:
        raise SystemExit(f"{lost} rows lost or duplicated")
    return runs


if __name__ == "__main__":
    main()
