"""`cadenza demo`: the whole chain on a synthesised dataset served from loopback, or on real MusicCaps.

Offline (default): build the demo dataset, serve its media on 127.0.0.1, then ingest with yt-dlp,
train the `demo` EnCodec on the ingested audio (holding out the last shard), tokenize with it, audit,
measure the codec per audit group, train the tiny model briefly, sample, evaluate and break the
evaluation down by audit group. With `csv`, the same chain runs on that CSV
against YouTube and the real AudioSet ontology (needs the network), with pretrained tokenizers.
Each stage is the library function the CLI and the Airflow DAGs call (cadenza.stages); every
stage resumes or reuses finished work, so running the demo twice is safe.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza import stages as orch
from cadenza.formats import defaults

DEMO_BEAM_OPTIONS = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]
DEMO_SHARD_SIZE = 16  # small shards, so the demo shows several
DEMO_PROMPTS = [
    "an energetic house track with a four-on-the-floor kick and a detuned saw bass",
    "a slow sitar melody over a drone with tabla",
    "a bright chiptune melody with square waves at a fast tempo",
    "a gamelan ensemble with metallophones and a gong",
]
DEMO_SEMANTIC_CLUSTERS = 128
DEMO_CODEC_PRESET = "demo"  # a few dozen clips hold ~20k feature frames: enough for 128 centroids


@dataclass
class DemoPlan:
    out_dir: Path
    csv: str | None  # None: the synthesised dataset
    n_clips: int = 36
    seed: int = 0
    max_steps: int = 400
    num_samples: int = 4
    codec_steps: int | None = None  # None: the demo codec preset's
    limit: int | None = None
    steps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def offline(self) -> bool:
        return self.csv is None

    def describe(self) -> list[tuple[str, str]]:
        d = orch.stage_dirs(self.out_dir)
        source = "the demo media on 127.0.0.1 (yt-dlp over loopback)" if self.offline else "YouTube (yt-dlp)"
        steps = [("dataset", f"synthesise {self.n_clips} clips in 7 styles + 3 rows that must fail -> "
                             f"{self.out_dir / 'demo-data'}")] if self.offline else []
        return steps + [
            ("fetch_metadata", f"validate {'the demo CSV' if self.offline else self.csv} -> {d['metadata']}"),
            ("ingest", f"fetch from {source}, clip, resample, write audio shards -> {d['audio']}"),
            *([("codec_train", f"train the {DEMO_CODEC_PRESET} EnCodec on the audio shards (last shard held out) "
                               f"-> {d['codec']}")] if self.offline else []),
            ("tokenize", ("the trained codec" if self.offline else "pretrained EnCodec")
             + f", k-means semantic, MiniLM text -> {d['tokens']}"),
            ("audit", f"cultural-bias report and sampling weights -> {d['audit']}"),
            *([("codec_eval", f"codec reconstruction per audit group -> {d['codec_eval']}")] if self.offline else []),
            ("train", f"hold out the last token shard, train the tiny two-stage model {self.max_steps} steps "
                      f"-> {d['run']}"),
            ("sample", f"{self.num_samples} samples from text prompts (WAV + spectrogram) -> {d['samples']}"),
            ("evaluate", f"held-out NLL, token statistics, audio distance, memorization, per audit group "
                         f"-> {d['eval']}"),
        ]


def missing_stages(offline: bool = True) -> dict[str, str]:
    """Stages whose code cannot be imported, with the reason (empty when the chain can run)."""
    import importlib

    missing = {s: why for s in orch.ENTRY_POINTS if (why := orch.stage_available(s))}
    if offline:
        try:
            importlib.import_module("cadenza.testing.mediaserver").MediaServer  # noqa: B018
        except (ImportError, AttributeError) as exc:
            missing["mediaserver"] = f"cadenza.testing.mediaserver.MediaServer is not available: {exc}"
    return missing


def run_demo(out_dir: str | Path, csv: str | None = None, *, n_clips: int = 36, seed: int = 0, max_steps: int = 400,
             num_samples: int = 4, limit: int | None = None, plan_only: bool = False, console: Any = None,
             sample_seconds: float = 10.0, codec_steps: int | None = None) -> dict[str, Any]:
    """Run the chain and return every stage's outputs (paths and counts), printing a summary."""
    from rich.console import Console

    console = console or Console()
    plan = DemoPlan(Path(out_dir).expanduser().resolve(), csv, n_clips=n_clips, seed=seed, max_steps=max_steps,
                    num_samples=num_samples, codec_steps=codec_steps, limit=limit)
    dirs = orch.stage_dirs(plan.out_dir)
    results: dict[str, Any] = {}
    clock = StageClock()

    with contextlib.ExitStack() as stack:
        if plan.offline:
            from cadenza.demo.dataset import MANIFEST_NAME, build_demo_dataset

            console.rule("[bold]cadenza demo: synthesised MusicCaps-format data")
            ds = build_demo_dataset(plan.out_dir / "demo-data", n_clips=n_clips, seed=seed)
            results["dataset"] = {"csv": str(ds.csv_path), "media": str(ds.media_dir), "clips": len(ds.clips),
                                  "planted_failures": [f"{p.kind} ({p.ytid})" for p in ds.planted],
                                  "reused": ds.reused}
            clock.lap("dataset")
            csv_spec, ontology = str(ds.csv_path), str(ds.ontology_path)
        else:
            csv_spec, ontology = str(csv), defaults.ONTOLOGY_URL
        _print_plan(console, plan)
        if plan_only:
            return results
        if missing := missing_stages(plan.offline):
            raise orch.StageError("demo", f"cannot run {', '.join(missing)}: " + "; ".join(missing.values()))

        if plan.offline:
            from cadenza.testing.mediaserver import MediaServer

            url_template = stack.enter_context(MediaServer(ds.media_dir)).url_template(ds.audio_format)
            check_served(url_template, ds.clips[0].ytid)
            console.print(f"serving demo media at {url_template}")
        else:
            url_template = defaults.YOUTUBE_URL_TEMPLATE
        beam = orch.beam_args("DirectRunner", DEMO_BEAM_OPTIONS)
        with console.status("fetch_metadata"):
            results["fetch_metadata"] = orch.fetch_metadata(csv_spec, dirs["metadata"])
            clock.lap("fetch_metadata")
        console.rule("ingest")
        results["ingest"] = orch.ingest(csv_spec, dirs["audio"], url_template=url_template,
                                        shard_size=_shard_size(plan), limit=limit, ontology=ontology, beam=beam)
        clock.lap("ingest")
    # the media server is no longer needed once the audio shards exist
    codec_weights = None
    if plan.offline:  # no model hub: the codec is one trained here, on the demo's own audio
        console.rule("codec train")
        results["codec_train"] = orch.codec_train(dirs["audio"], dirs["codec"], preset=DEMO_CODEC_PRESET,
                                                  steps=plan.codec_steps, holdout_shards=1, seed=seed)
        clock.lap("codec_train")
        codec_weights = dirs["codec"]
    console.rule("tokenize")
    results["tokenize"] = orch.tokenize(dirs["audio"], dirs["tokens"], codec_weights=codec_weights,
                                        clusters=DEMO_SEMANTIC_CLUSTERS, beam=beam)
    clock.lap("tokenize")
    console.rule("audit")
    weights = f"{dirs['audit']}/weights.json"
    results["audit"] = orch.audit(csv_spec, dirs["audit"], ontology=ontology,
                                  audio_dir=dirs["audio"], weights_out=weights)
    clock.lap("audit")
    if plan.offline:
        results["codec_eval"] = orch.codec_eval(dirs["codec"], dirs["audio"], dirs["codec_eval"],
                                                audit_dir=dirs["audit"])
        clock.lap("codec_eval")
    console.rule("train")
    results["split"] = orch.split_tokens(dirs["tokens"], dirs["split"], heldout_shards=1)
    clock.lap("split")
    results["train"] = orch.train(results["split"]["train"], dirs["run"], preset="tiny", steps=max_steps,
                                  weights=weights, seed=seed)
    clock.lap("train")
    console.rule("sample / evaluate")
    results["sample"] = orch.sample(dirs["run"], dirs["samples"], prompts=DEMO_PROMPTS[:num_samples], seed=seed,
                                    seconds=sample_seconds)
    clock.lap("sample")
    # offline, the demo's own styles label the clips for prompt adherence; otherwise the audit's genres
    labels = str(ds.root / MANIFEST_NAME) if plan.offline else None
    results["evaluate"] = orch.evaluate(dirs["run"], results["split"]["heldout"], dirs["eval"],
                                        audit_dir=dirs["audit"], num_samples=num_samples, labels=labels)
    clock.lap("evaluate")
    results["report"] = orch.report(dirs["audit"], dirs["report"], eval_dir=dirs["eval"],
                                    codec_eval_dir=results.get("codec_eval", {}).get("dir"))
    clock.lap("report")
    results["seconds_by_stage"] = clock.seconds
    print_summary(console, results)
    return results


class StageClock:
    """Wall seconds per stage: each lap is the time since the previous one."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.seconds: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self._now()
        self.seconds[stage] = round(now - self._last, 1)
        self._last = now


def _shard_size(plan: DemoPlan) -> int:
    """Offline: about four even shards, so the held-out last one has a quarter of the clips; MusicCaps' default
    otherwise. (Shards take the valid rows in CSV order; the demo has one valid row more than clips.)"""
    return min(DEMO_SHARD_SIZE, max(2, -(-(plan.n_clips + 1) // 4))) if plan.offline else defaults.SHARD_SIZE


def check_served(url_template: str, ytid: str) -> None:
    """Fail early, and clearly, if the media server does not serve a file that exists."""
    import urllib.error
    import urllib.request

    url = url_template.format(ytid=ytid)
    if not url.startswith("http://127.0.0.1:"):
        raise orch.StageError("serve", f"the demo media must be served on loopback, not at {url}")
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback http only, checked above)
            resp.read(1)
    except (urllib.error.URLError, OSError) as exc:
        raise orch.StageError("serve", f"{url} is not served ({exc}); is the media directory right?") from exc


def _print_plan(console: Any, plan: DemoPlan) -> None:
    from rich.table import Table

    table = Table(title="what the demo runs", show_lines=False)
    table.add_column("stage", style="bold cyan")
    table.add_column("does")
    for name, what in plan.describe():
        table.add_row(name, what)
    console.print(table)


def print_summary(console: Any, results: dict[str, Any]) -> None:
    from rich.table import Table

    rows = [
        ("audio shards", results.get("ingest", {}).get("dir"), _counts(results.get("ingest"), "clips_written")),
        ("codec", results.get("codec_train", {}).get("dir"), _codec_counts(results.get("codec_train"))),
        ("codec evaluation", results.get("codec_eval", {}).get("report_html"),
         _codec_eval_counts(results.get("codec_eval"))),
        ("token shards", results.get("tokenize", {}).get("dir"), _counts(results.get("tokenize"), "clips_written")),
        ("audit report", results.get("audit", {}).get("report_html"), ""),
        ("training run", results.get("train", {}).get("dir"), ""),
        ("samples", results.get("sample", {}).get("dir"), ""),
        ("evaluation report", results.get("evaluate", {}).get("report_html"), ""),
        ("chain per culture", results.get("report", {}).get("report_html"), ""),
    ]
    table = Table(title="cadenza demo: outputs")
    table.add_column("what", style="bold")
    table.add_column("where", no_wrap=True)
    table.add_column("counts")
    for what, where, counts in rows:
        if where:
            table.add_row(what, str(where), counts)
    console.print(table)
    if seconds := results.get("seconds_by_stage"):
        console.print("time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
                      + f"; total {sum(seconds.values()):.0f} s")


def _codec_counts(result: dict[str, Any] | None) -> str:
    if not result or result.get("heldout_log_mel_l1") is None:
        return ""
    return (f"held-out log-mel L1 {result['heldout_log_mel_l1']:.2f} "
            f"(random-init codec {result['random_init_log_mel_l1']:.2f}); {result['steps']} steps")


def _codec_eval_counts(result: dict[str, Any] | None) -> str:
    if not result or "chroma_similarity" not in result:
        return ""
    chroma, flat = result["chroma_similarity"], result["flatness_ratio"]
    return (f"chroma similarity {chroma['codec']:.2f} (Opus {chroma['opus']:.2f}), flatness ratio "
            f"{flat['codec']:.1f} (Opus {flat['opus']:.1f}); {result['clips']} clips"
            + (f", {result['undecodable']} not decodable" if result.get("undecodable") else ""))


def _counts(result: dict[str, Any] | None, key: str) -> str:
    if not result:
        return ""
    failures = result.get("failures_by_category") or {}
    fail = ", ".join(f"{k}: {v}" for k, v in failures.items())
    return f"{result.get(key)} clips in {result.get('shards')} shards" + (f"; failed: {fail}" if fail else "")
