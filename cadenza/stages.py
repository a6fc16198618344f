"""The chain as named stages with JSON-friendly results: shared by the Airflow DAGs and `cadenza demo`.

Each stage function takes plain values (paths, numbers, lists: what a DAG param or CLI option holds),
builds the stage's config, calls the library entry point and returns a small dict of output paths and
counts (an Airflow XCom). Stage modules are imported inside the functions, so importing this module (and
the DAG files that use it) stays cheap and works before the heavy dependencies are loaded.
A stage that fails, or that produces nothing, raises StageError naming the stage and the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cadenza.formats import defaults

# where each stage writes under one output root; the DAGs and the demo use the same layout
STAGE_DIRS = {
    "metadata": "metadata", "audio": "audio", "codec": "codec", "tokens": "tokens", "audit": "audit",
    "codec_eval": "codec-eval",
    "split": "split", "run": "run", "samples": "samples", "eval": "eval", "report": "report",
}

# stage -> (module, entry point)
ENTRY_POINTS = {
    "ingest": ("cadenza.pipelines.ingest.run", "run_ingest"),
    "codec_train": ("cadenza.codec.trainer", "train_codec"),
    "codec_eval": ("cadenza.codec.evaluate", "evaluate_codec"),
    "tokenize": ("cadenza.pipelines.tokenize.run", "run_tokenize"),
    "audit": ("cadenza.audit", "run_audit"),
    "train": ("cadenza.training.trainer", "train"),
    "sample": ("cadenza.training.sampler", "sample"),
    "evaluate": ("cadenza.evaluation.evaluate", "evaluate"),
    "report": ("cadenza.audit", "write_chain_report"),
}


class StageError(RuntimeError):
    """A stage of the chain failed; the message names the stage and why."""

    def __init__(self, stage: str, message: str):
        super().__init__(f"stage {stage!r} failed: {message}")
        self.stage = stage


def stage_dirs(out_dir: str | Path) -> dict[str, str]:
    root = Path(out_dir).expanduser()
    return {name: str(root / sub) for name, sub in STAGE_DIRS.items()}


def beam_args(runner: str = defaults.BEAM_RUNNER, options: str | list[str] | None = None) -> list[str]:
    """Beam pipeline options: the runner plus any extra options (a list, or one shell-quoted string)."""
    extra = shlex.split(options) if isinstance(options, str) else list(options or [])
    if any(o.startswith("--runner") for o in extra):
        raise ValueError("give the runner with the runner parameter, not in the Beam options")
    return [f"--runner={runner}", *extra]


def stage_available(stage: str) -> str | None:
    """None when the stage's entry point imports, else why not (for skips and the demo's plan)."""
    module, attr = ENTRY_POINTS[stage]
    try:
        getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        return f"{module}.{attr} is not available: {exc}"
    return None


def _entry(stage: str, module: str | None = None) -> Any:
    module, attr = (module or ENTRY_POINTS[stage][0]), ENTRY_POINTS[stage][1]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StageError(stage, f"cannot import {module} (needed for {attr}): {exc}") from exc


def _config(stage: str, cls: Any, values: dict[str, Any]) -> Any:
    """cls.from_dict(values), with an error that shows both sides when the names do not match."""
    try:
        return cls.from_dict(values)
    except (TypeError, KeyError, ValueError) as exc:
        known = sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else "?"
        raise StageError(stage, f"bad {cls.__name__} {sorted(values)} (fields: {known}): {exc}") from exc


@contextmanager
def running(stage: str) -> Iterator[None]:
    """Re-raise anything a stage raises as StageError, keeping the original as the cause."""
    try:
        yield
    except StageError:
        raise
    except Exception as exc:
        raise StageError(stage, f"{type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------- ingest side


def fetch_metadata(csv: str, out_dir: str) -> dict[str, Any]:
    """Download (once) and validate the MusicCaps CSV; write the validation summary and the rejects."""
    from cadenza.common.sources import resolve_source
    from cadenza.formats.storage import write_bytes_atomic, write_json_atomic
    from cadenza.musiccaps.csvload import load_musiccaps

    with running("fetch_metadata"):
        local = resolve_source(csv, what="the MusicCaps CSV")
        result = load_musiccaps(local)
        summary = result.summary()
        write_json_atomic(f"{out_dir}/validation.json", summary)
        rejects = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in result.rejects)
        write_bytes_atomic(f"{out_dir}/rejects.jsonl", rejects.encode())
    if not result.clips:
        raise StageError("fetch_metadata", f"{csv}: no valid rows ({summary['rejected']} rejected: "
                                           f"{summary['rejected_by_reason']})")
    return {"csv": str(local), "rows_read": result.rows_read, "valid": len(result.clips),
            "rejected": len(result.rejects), "rejected_by_reason": result.rejects_by_reason(),
            "validation": f"{out_dir}/validation.json", "rejects": f"{out_dir}/rejects.jsonl"}


def _manifest_summary(stage: str, out_dir: str, manifest: dict[str, Any], count_key: str) -> dict[str, Any]:
    written = int(manifest.get(count_key, 0))
    if written <= 0:
        raise StageError(stage, f"wrote no samples to {out_dir}; failures: {manifest.get('failures_by_category')}")
    return {"dir": out_dir, "manifest": f"{out_dir}/manifest.json", count_key: written,
            "shards": len(manifest.get("shards", [])), "failures_by_category": manifest.get("failures_by_category", {})}


def ingest(csv: str, audio_dir: str, *, url_template: str = defaults.YOUTUBE_URL_TEMPLATE,
           shard_size: int = defaults.SHARD_SIZE, sample_rate: int = defaults.SAMPLE_RATE, limit: int | None = None,
           ontology: str | None = defaults.ONTOLOGY_URL,
           beam: list[str] | None = None) -> dict[str, Any]:
    mod = _entry("ingest")
    config = _config("ingest", mod.IngestConfig, {
        "csv": csv, "out": audio_dir, "source_url_template": url_template, "shard_size": shard_size,
        "sample_rate": sample_rate, "limit": limit, "ontology": ontology})
    with running("ingest"):
        manifest = _as_dict(mod.run_ingest(config, beam))
    return _manifest_summary("ingest", audio_dir, manifest, "clips_written")


def codec_train(audio_dir: str, codec_dir: str, *, preset: str = defaults.CODEC_PRESET, steps: int | None = None,
                holdout_shards: int = 1, val_shards: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Train an EnCodec on the audio shards (resuming, or reusing a finished run of the same settings)."""
    mod = _entry("codec_train")
    config = _config("codec_train", mod.CodecTrainConfig, {
        "shards": audio_dir, "out": codec_dir, "preset": preset, "steps": steps, "holdout_shards": holdout_shards,
        "val_shards": val_shards, "seed": seed, "resume": True})
    with running("codec_train"):
        record = mod.train_codec(config)
    held, base = record.get("heldout") or {}, record.get("random_init_baseline") or {}
    return {"dir": codec_dir, "record": f"{codec_dir}/{mod.RECORD}", "preset": preset, "steps": record["steps"],
            "heldout_log_mel_l1": held.get("log_mel_l1"), "random_init_log_mel_l1": base.get("log_mel_l1"),
            "heldout_si_snr": held.get("si_snr"), "random_weights": False}


def codec_eval(codec_dir: str, audio_dir: str, eval_dir: str, *, audit_dir: str | None = None,
               max_clips: int | None = None) -> dict[str, Any]:
    """Reconstruction quality of a codec on audio shards, per audit group when an audit dir is given."""
    mod = _entry("codec_eval")
    config = _config("codec_eval", mod.CodecEvalConfig, {
        "codec": codec_dir, "shards": audio_dir, "out": eval_dir, "audit": audit_dir, "max_clips": max_clips})
    with running("codec_eval"):
        metrics = mod.evaluate_codec(config)
    return {"dir": eval_dir, "metrics": f"{eval_dir}/metrics.json", "report_html": f"{eval_dir}/report.html",
            "clips": metrics["clips"], "log_mel_l1": metrics["overall"]["log_mel_l1"]["mean"],
            "headline": (metrics.get("headline") or {}).get("metric"),
            **{m: {"codec": metrics["overall"][m]["mean"], "opus": metrics["references"]["opus"][m]["mean"]}
               for m in ("chroma_similarity", "flatness_ratio")},
            "undecodable": metrics["undecodable"]["count"], "flagged": metrics.get("flagged", [])}


def tokenize(audio_dir: str, tokens_dir: str, *, acoustic: str = defaults.ACOUSTIC_CODEC, random_init: bool = False,
             codec_weights: str | None = None, text: str = defaults.TEXT_ENCODER, clusters: int = defaults.CLUSTERS,
             optimize: str | None = None, beam: list[str] | None = None) -> dict[str, Any]:
    """optimize: the EnCodec encoder variant (None: TokenizeConfig's default)."""
    mod = _entry("tokenize")
    values = {"shards": audio_dir, "out": tokens_dir, "acoustic": acoustic, "codec_random_init": random_init,
              "codec_weights": codec_weights, "text": text, "clusters": clusters}
    if optimize is not None:
        values["optimize"] = optimize
    config = _config("tokenize", mod.TokenizeConfig, values)
    with running("tokenize"):
        manifest = _as_dict(mod.run_tokenize(config, beam))
    out = _manifest_summary("tokenize", tokens_dir, manifest, "clips_written")
    out["random_weights"] = bool(manifest.get("random_weights", random_init))
    return out


def audit(csv: str, audit_dir: str, *, ontology: str = defaults.ONTOLOGY_URL, audio_dir: str | None = None,
          weights_out: str | None = None, region_evidence: str = "both",
          balance_annotators: bool = False) -> dict[str, Any]:
    from cadenza.formats.assignments import ASSIGNMENTS_FILE

    mod = _entry("audit")
    config = _config("audit", mod.AuditConfig, {
        "csv": csv, "ontology": ontology, "out": audit_dir, "ingest": audio_dir, "weights_out": weights_out,
        "region_evidence": region_evidence, "balance_annotators": balance_annotators})
    with running("audit"):
        metrics = _as_dict(mod.run_audit(config))
    return {"dir": audit_dir, "report_html": f"{audit_dir}/report.html", "metrics": f"{audit_dir}/metrics.json",
            "assignments": f"{audit_dir}/{ASSIGNMENTS_FILE}", "weights": weights_out,
            "clips": metrics.get("clips", metrics.get("n_clips"))}


# ---------------------------------------------------------------- training side


def split_tokens(tokens_dir: str, split_dir: str, *, heldout_shards: int = 1, holdout_by: str = "shard",
                 audit_dir: str | None = None, heldout_fraction: float = 0.25) -> dict[str, Any]:
    """Train and held-out views of the token shards, so evaluation is on unseen clips: the last shards
    (symlinks, no copies), or with holdout_by="annotator" every clip of some annotators (needs audit_dir)."""
    from cadenza.training.splits import split_token_dir

    with running("split_tokens"):
        return split_token_dir(tokens_dir, f"{split_dir}/train", f"{split_dir}/heldout", heldout_shards,
                               holdout_by=holdout_by, audit_dir=audit_dir, heldout_fraction=heldout_fraction)


def train_config(tokens_dir: str, run_dir: str, *, preset: str = defaults.MODEL_PRESET,
                 steps: int = defaults.CHAIN_TRAIN_STEPS, weights: str | None = None, seed: int = 0,
                 val_shards: str | None = None, resume: bool = True) -> Any:
    """The TrainConfig `train` runs: the preset's batch size, crop and learning rate, as
    `cadenza train --config PRESET` gets them, with the chain's steps."""
    mod = _entry("train")
    return _config("train", mod.TrainConfig, {
        **mod.SIZE_DEFAULTS.get(preset, {}), "shards": tokens_dir, "out": run_dir, "model": preset, "steps": steps,
        "weights": weights, "seed": seed, "val_shards": val_shards,
        "resume": resume and Path(run_dir, "config.json").is_file()})


def train(tokens_dir: str, run_dir: str, *, preset: str = defaults.MODEL_PRESET,
          steps: int = defaults.CHAIN_TRAIN_STEPS, weights: str | None = None, seed: int = 0,
          val_shards: str | None = None, resume: bool = True) -> dict[str, Any]:
    """Train (or resume, and skip when the run already reached `steps`)."""
    mod = _entry("train")
    config = train_config(tokens_dir, run_dir, preset=preset, steps=steps, weights=weights, seed=seed,
                          val_shards=val_shards, resume=resume)
    with running("train"):
        result = mod.train(config)
    return _outputs({"dir": run_dir, "metrics_log": f"{run_dir}/metrics.jsonl"}, result)


def sample(run_dir: str, samples_dir: str, *, prompts: list[str], seconds: float = defaults.SAMPLE_SECONDS,
           seed: int = 0, codec_random_init: bool = False, codec_weights: str | None = None,
           device: str = "cpu") -> dict[str, Any]:
    mod = _entry("sample")
    if not prompts:
        raise StageError("sample", "no prompts given")
    with running("sample"):
        results = mod.sample(run_dir, list(prompts), samples_dir, mod.SampleConfig(seconds=seconds, seed=seed),
                             codec_random_init=codec_random_init, codec_weights=codec_weights, device=device)
    return {"dir": samples_dir, "index": f"{samples_dir}/samples.json", "wavs": [r["wav"] for r in results]}


def evaluate(run_dir: str, heldout_dir: str, eval_dir: str, *, audit_dir: str | None = None,
             num_samples: int = defaults.CHAIN_EVAL_SAMPLES, seconds: float | None = None,
             codec_random_init: bool = False, codec_weights: str | None = None, labels: str | None = None,
             embeddings: str = defaults.EMBEDDINGS, max_references: int = defaults.MAX_REFERENCES,
             device: str = "cpu") -> dict[str, Any]:
    mod = _entry("evaluate")
    config = mod.EvalConfig(num_samples=num_samples, seconds=seconds, embeddings=embeddings,
                            max_references=max_references)
    with running("evaluate"):
        metrics = mod.evaluate(run_dir, heldout_dir, eval_dir, audit_dir=audit_dir, config=config,
                               labels=mod.load_labels(labels), codec_random_init=codec_random_init,
                               codec_weights=codec_weights, device=device)
    return {"dir": eval_dir, "metrics": f"{eval_dir}/metrics.json", "report_html": f"{eval_dir}/report.html",
            "by_group": bool(audit_dir), "heldout_nll": _jsonable_or_none(_as_dict(metrics).get("nll"))}


def report(audit_dir: str, report_dir: str, *, eval_dir: str | None = None,
           codec_eval_dir: str | None = None) -> dict[str, Any]:
    """The chain per culture on one page: audit, then codec and model evaluations where they ran."""
    mod = _entry("report")
    with running("report"):
        chain = mod.write_chain_report(audit_dir, report_dir, codec_dir=codec_eval_dir, eval_dir=eval_dir)
    return {"dir": report_dir, "report_html": chain["html"], "chain": f"{report_dir}/chain.json",
            "links": {c["key"]: c["status"] for c in chain["columns"]}}


def _jsonable_or_none(v: Any) -> Any:
    return v if _jsonable(v) else None


def _as_dict(result: Any) -> dict[str, Any]:
    """A stage's return value as a dict: a mapping, a dataclass or anything with to_dict(); None is {}."""
    if result is None:
        return {}
    if hasattr(result, "to_dict"):
        return dict(result.to_dict())
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return dict(result)


def _outputs(out: dict[str, Any], result: Any) -> dict[str, Any]:
    """`out` plus the JSON-serialisable part of the stage's result (what an XCom can carry)."""
    return {**out, **{k: v for k, v in _as_dict(result).items() if _jsonable(v)}}


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True
