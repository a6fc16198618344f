"""The full dress rehearsal: every row of the real MusicCaps CSV through the whole chain, measured.

    python benchmarks/bench_musiccaps_full.py [--rows N] [--work-dir DIR] [--json]

Media for every ytid is synthesised (benchmarks/rehearsal_media.py: m4a, webm and mp4, the 10 s window
inside a longer file, cached in WORK/media) and served by the loopback media server with 50-300 ms of
latency per request and about 5% faults (404, 410, 429-then-200, truncated bodies). Then the chain's
named stages (cadenza.stages), each in a fresh process: ingest -> codec_train (a short `demo`
preset run) -> tokenize (that codec, MFCC k-means, MiniLM) -> audit (with survival from the ingest) ->
train (a short run of the `small` model on all token shards but the last) -> evaluate (on the last).

It prints, per stage: wall and CPU time, clips/s and audio-seconds/s, peak RSS of the stage's process
tree; then every input row accounted for by clip key (shards + failures + pending = rows in, 0 lost,
0 duplicated) and the disk bytes per hour of audio of the audio and token shards. `--json` prints all
of it as one JSON document on stdout; progress goes to stderr. It exits 1 when a row is lost or
duplicated, or a stage fails. `--rows N` takes the first N rows (a CSV slice written to the work dir).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # the rehearsal's own modules beside this file

import rehearsal_measure as measure  # noqa: E402
import rehearsal_media as media  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "musiccaps" / "musiccaps-public.csv"
DEFAULT_ONTOLOGY = REPO.parent / "shared" / "data" / "audioset" / "ontology.json"
BEAM = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
CHAIN = ("ingest", "codec_train", "tokenize", "audit", "train", "evaluate")


def log(msg: str) -> None:
    print(f"[rehearsal {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- stages (run in a child process each)


def stage_body(name: str, p: dict[str, Any]) -> dict[str, Any]:
    from cadenza import stages as orch

    d = p["dirs"]
    if name == "media":
        rows = [(r["ytid"], float(r["start_s"]), float(r["end_s"])) for r in read_rows(Path(p["csv"]))]
        return media.make_media(Path(p["media"]), rows, workers=os.cpu_count() or 1)
    if name == "ingest":
        return orch.ingest(p["csv"], d["audio"], url_template=p["url_template"], shard_size=p["shard_size"],
                           ontology=p["ontology"], beam=BEAM)
    if name == "codec_train":
        return orch.codec_train(d["audio"], d["codec"], preset="demo", steps=p["codec_steps"], holdout_shards=1)
    if name == "tokenize":
        return orch.tokenize(d["audio"], d["tokens"], codec_weights=d["codec"], clusters=p["clusters"], beam=BEAM)
    if name == "audit":
        return orch.audit(p["csv"], d["audit"], ontology=p["ontology"], audio_dir=d["audio"],
                          weights_out=f"{d['audit']}/weights.json")
    if name == "train":
        split = orch.split_tokens(d["tokens"], d["split"], heldout_shards=1)
        out = orch.train(split["train"], d["run"], preset=p["train_preset"], steps=p["train_steps"],
                         weights=f"{d['audit']}/weights.json")
        return {**out, "split": split}
    if name == "evaluate":
        return orch.evaluate(d["run"], f"{d['split']}/heldout", d["eval"], audit_dir=d["audit"],
                             num_samples=p["eval_samples"], codec_weights=d["codec"])
    raise ValueError(f"unknown stage {name}")


def stage_child(name: str, params_path: str) -> None:
    """Entry point of a stage's child process: run it, write its result beside its parameters."""
    params = json.loads(Path(params_path).read_text())
    result = stage_body(name, params)
    Path(params_path).with_suffix(".out.json").write_text(json.dumps(result, default=str))


def run_stage(name: str, params: dict[str, Any], stage_dir: Path) -> tuple[measure.Measured, dict[str, Any]]:
    params_path = stage_dir / f"{name}.json"
    params_path.write_text(json.dumps(params))
    # loaded by file path, as the script is: benchmarks/ is not a package
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('rehearsal', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "m.stage_child(sys.argv[2], sys.argv[3])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log(f"stage {name} ...")
    got = measure.run_measured([sys.executable, "-c", code, __file__, name, str(params_path)], env)
    out_path = params_path.with_suffix(".out.json")
    result = json.loads(out_path.read_text()) if got.returncode == 0 and out_path.is_file() else {}
    log(f"stage {name}: {got.wall_s:.1f} s wall, {got.cpu_s:.1f} s CPU, exit {got.returncode}")
    return got, result


# ---------------------------------------------------------------- the run


def read_rows(csv_path: Path, limit: int | None = None) -> list[dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return rows[:limit] if limit else rows


def write_slice(src: Path, dst: Path, rows: int) -> None:
    """The header and the first `rows` records of `src`, as they are (quoting and all)."""
    with src.open(newline="", encoding="utf-8") as f, dst.open("w", newline="", encoding="utf-8") as g:
        reader = csv.reader(f)
        writer = csv.writer(g)
        writer.writerow(next(reader))
        for i, rec in enumerate(reader):
            if i >= rows:
                break
            writer.writerow(rec)


def auto_shard_size(rows: int) -> int:
    """About eight shards for a slice (the last held out by codec_train and train); 256 rows at full size."""
    return min(256, max(4, -(-rows // 8)))


def rehearse(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from cadenza import stages as orch
    from cadenza.testing.mediaserver import MediaServer

    rows_all = read_rows(args.csv)
    n = min(args.rows or len(rows_all), len(rows_all))
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # stages resume finished work: a measured run starts empty
    (run_dir / "stages").mkdir(parents=True)
    csv_path = args.csv if n == len(rows_all) else run_dir / f"musiccaps-first-{n}.csv"
    if csv_path != args.csv:
        write_slice(args.csv, csv_path, n)
    rows = rows_all[:n]
    ytids = [r["ytid"] for r in rows]
    faults = media.fault_plan(ytids, args.fault_share)
    dirs = orch.stage_dirs(run_dir)
    params: dict[str, Any] = {
        "csv": str(csv_path), "ontology": str(args.ontology), "media": str(work / "media"), "dirs": dirs,
        "shard_size": args.shard_size or auto_shard_size(n), "codec_steps": args.codec_steps,
        "clusters": args.clusters, "train_preset": args.train_preset, "train_steps": args.train_steps,
        "eval_samples": args.eval_samples}
    stages: dict[str, dict[str, Any]] = {}

    def record(name: str, got: measure.Measured, result: dict[str, Any], clips: float | None,
               seconds: float | None) -> None:
        stages[name] = {"wall_s": got.wall_s, "cpu_s": got.cpu_s, "peak_rss_mb": got.peak_rss_mb,
                        "max_process_rss_mb": got.max_process_rss_mb, "clips": clips, "audio_s": seconds,
                        "clips_per_s": round(clips / got.wall_s, 2) if clips else None,
                        "audio_s_per_s": round(seconds / got.wall_s, 2) if seconds else None,
                        "ok": got.returncode == 0, "result": result}
        if got.returncode != 0:
            raise orch.StageError(name, f"exit {got.returncode} (its log is above on stderr)")

    got, res = run_stage("media", params, run_dir / "stages")
    record("media", got, res, n, None)
    with MediaServer(work / "media", latency_s=tuple(args.latency), faults=faults) as srv:
        params["url_template"] = srv.url_template("")
        got, res = run_stage("ingest", params, run_dir / "stages")
        requests = sum(srv.requests.values())
    audio_s = measure.audio_seconds(Path(dirs["audio"]) / "stats")
    record("ingest", got, res, res.get("clips_written"), audio_s)
    got, res = run_stage("codec_train", params, run_dir / "stages")
    record("codec_train", got, res, None, None)
    got, res = run_stage("tokenize", params, run_dir / "stages")
    token_clips = res.get("clips_written") or 0
    token_audio_s = json.loads(Path(dirs["tokens"], "manifest.json").read_text()).get("audio_seconds") \
        if got.returncode == 0 else None
    record("tokenize", got, res, token_clips, token_audio_s)
    got, res = run_stage("audit", params, run_dir / "stages")
    record("audit", got, res, n, None)
    got, res = run_stage("train", params, run_dir / "stages")
    record("train", got, res, None, None)
    got, res = run_stage("evaluate", params, run_dir / "stages")
    record("evaluate", got, res, None, None)

    hours = audio_s / 3600
    audio_tar = measure.tar_bytes(Path(dirs["audio"]) / "shards")
    token_tar = measure.tar_bytes(Path(dirs["tokens"]) / "shards")
    token_hours = (token_audio_s or 0) / 3600
    chain = [stages[s] for s in CHAIN]
    for name, share in chain_shares(stages).items():
        stages[name]["share_of_chain_wall"] = share
    return {
        "rows": n, "csv": str(args.csv), "work_dir": str(work),
        "server": {"latency_s": list(args.latency), "faults_planted": dict(sorted(
            {k: list(faults.values()).count(k) for k in set(faults.values())}.items())), "requests": requests},
        "media": stages["media"]["result"],
        "stages": stages,
        "chain_total": {"wall_s": round(sum(s["wall_s"] for s in chain), 1),
                        "cpu_s": round(sum(s["cpu_s"] for s in chain), 1)},
        "accounting": measure.account(measure.expected_keys(rows), Path(dirs["audio"])),
        "token_accounting": measure.account_tokens(Path(dirs["audio"]), Path(dirs["tokens"])),
        "disk": {"audio_hours": round(hours, 4),
                 "audio_shard_bytes": audio_tar, "token_shard_bytes": token_tar,
                 "audio_shard_bytes_per_hour": round(audio_tar / hours) if hours else None,
                 "token_shard_bytes_per_hour": round(token_tar / token_hours) if token_hours else None,
                 "audio_dir_bytes": measure.dir_bytes(Path(dirs["audio"])),
                 "tokens_dir_bytes": measure.dir_bytes(Path(dirs["tokens"]))},
    }


# ---------------------------------------------------------------- output


def chain_shares(stages: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each chain stage's share of the chain's wall time (the media synthesis is set-up, not chain)."""
    total = sum(stages[s]["wall_s"] for s in CHAIN)
    return {s: round(stages[s]["wall_s"] / total, 3) for s in CHAIN}


def _fmt(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def print_table(report: dict[str, Any]) -> None:
    head = ("stage", "wall s", "share", "CPU s", "clips", "clips/s", "audio s/s", "peak RSS MB", "max proc MB")
    lines = [head]
    shares = chain_shares(report["stages"])
    for name, s in report["stages"].items():
        share = f"{shares[name]:.0%}" if name in shares else "-"
        lines.append((name, _fmt(s["wall_s"]), share, _fmt(s["cpu_s"]), _fmt(s["clips"]), _fmt(s["clips_per_s"], 2),
                      _fmt(s["audio_s_per_s"], 2), _fmt(s["peak_rss_mb"], 0), _fmt(s["max_process_rss_mb"], 0)))
    t = report["chain_total"]
    lines.append(("chain (no media)", _fmt(t["wall_s"]), "100%", _fmt(t["cpu_s"]), "", "", "", "", ""))
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(head))]
    print(f"rehearsal: {report['rows']} rows of {report['csv']}; server {report['server']}; "
          f"media {report['media']}")
    print("share: of the chain's wall time; audio s/s: seconds of audio per wall second (x realtime); "
          "peak RSS: the stage's process tree")
    for r in lines:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        print("  ".join(cells))
    a, tk, d = report["accounting"], report["token_accounting"], report["disk"]
    print(f"rows: {a['rows_in']} in = {a['in_shards']} in shards + {a['failures']} failures + {a['pending']} pending; "
          f"lost {a['lost']}, duplicated {a['duplicated']}, unknown {a['unknown']}; "
          f"failures {a['failures_by_category']}, pending {a['pending_by_category']}")
    print(f"tokens: {tk['clips_in']} clips in = {tk['in_shards']} in shards + {tk['failures']} failures; "
          f"lost {tk['lost']}, duplicated {tk['duplicated']}")
    print(f"disk per hour of audio: audio shards {_fmt(d['audio_shard_bytes_per_hour'])} B, token shards "
          f"{_fmt(d['token_shard_bytes_per_hour'])} B ({d['audio_hours']} h of audio)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=None, help="the first N rows only (default: all)")
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--ontology", type=Path, default=DEFAULT_ONTOLOGY)
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="media cache and stage outputs (kept); default: a temporary dir, removed after")
    ap.add_argument("--latency", type=float, nargs=2, default=(0.05, 0.3), metavar=("LOW", "HIGH"))
    ap.add_argument("--fault-share", type=float, default=0.05, help="share of ytids whose requests misbehave")
    ap.add_argument("--shard-size", type=int, default=None, help="default: about 8 shards, at most 256 rows each")
    ap.add_argument("--codec-steps", type=int, default=30, help="steps of the `demo` codec preset")
    ap.add_argument("--clusters", type=int, default=1024, help="MFCC k-means clusters")
    ap.add_argument("--train-preset", default="small", help="model preset of the training run")
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--eval-samples", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the report as one JSON document")
    args = ap.parse_args(argv)
    problems = [
        (args.rows is not None and args.rows < 2, "--rows must be at least 2 (train holds out one shard)"),
        (not args.csv.is_file(), f"--csv {args.csv}: no such file; point it at musiccaps-public.csv"),
        (not args.ontology.is_file(), f"--ontology {args.ontology}: no such file; give AudioSet's ontology.json"),
        (not 0 <= args.fault_share < 1, "--fault-share must be in [0, 1)"),
        (not 0 <= args.latency[0] <= args.latency[1], "--latency LOW HIGH: need 0 <= LOW <= HIGH seconds"),
        (min(args.codec_steps, args.clusters, args.train_steps, args.eval_samples) < 1,
         "--codec-steps, --clusters, --train-steps and --eval-samples must be at least 1"),
    ]
    for bad, message in problems:
        if bad:
            print(f"bench_musiccaps_full: {message}", file=sys.stderr)
            raise SystemExit(2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so a running stage's group is killed
    tmp = None if args.work_dir else tempfile.TemporaryDirectory(prefix="cadenza-rehearsal-")
    work = (args.work_dir or Path(tmp.name)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = rehearse(args, work)
    except Exception as exc:  # noqa: BLE001 (a failed stage is a result: say which, exit 1)
        print(f"bench_musiccaps_full: {exc}", file=sys.stderr)
        return 1
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    a, tk = report["accounting"], report["token_accounting"]
    bad = a["lost"] + a["duplicated"] + a["unknown"] + tk["lost"] + tk["duplicated"] + tk["unknown"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
