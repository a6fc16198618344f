"""Sampling evaluation of a run on held-out token shards, optionally broken down by audit groups.

No model downloads: the audio metric is a Frechet distance over the project's own MFCC/spectral
features (`token_metrics.audio_features`), between generated audio and the held-out clips of the same
prompts resynthesized by the same codec, so codec artifacts do not count against the model.
Outputs in OUT: metrics.json, report.html (+ PNG plots), wavs/ (generated and reference audio).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.training import token_metrics as tm
from cadenza.training.data import LoaderConfig, TokenSpec, TokenStream, load_token_dir, make_loader
from cadenza.training.nll import heldout_nll
from cadenza.training.sampler import SampleConfig, default_decoder, generate, run_random_weights, write_outputs

log = logging.getLogger(__name__)
GROUPINGS = ("region", "genre", "instrument", "language", "vocal_gender")


@dataclass
class EvalConfig:
    num_samples: int = 16  # held-out captions used as prompts
    seconds: float | None = None  # generation and NLL window; default: the run's training crop
    batch_size: int = 8
    ngram: int = 4  # for repetition/diversity
    memorization_ngram: int = 0  # 0: one second of semantic tokens (at least 8)
    sample: SampleConfig = field(default_factory=SampleConfig)
    write_wavs: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clips(stream: TokenStream, limit: int | None = None) -> list[dict[str, Any]]:
    """Unpadded per-clip arrays of a single-pass stream."""
    out = []
    for batch in make_loader(stream):
        for i, key in enumerate(batch["keys"]):
            out.append(
                {
                    "key": key,
                    "ytid": batch["ytids"][i],
                    "semantic": batch["semantic"][i][batch["semantic_mask"][i]].numpy(),
                    "acoustic": batch["acoustic"][i][:, batch["acoustic_mask"][i]].numpy(),
                    "text": batch["text"][i].numpy() if bool(batch["has_text"][i]) else None,
                }
            )
            if limit is not None and len(out) >= limit:
                return out
    return out


def load_assignments(audit_dir: str | None) -> dict[str, dict[str, list[str]]]:
    """ytid and clip key -> {grouping: [groups]} from the audit; the rollup is one more grouping."""
    if not audit_dir:
        return {}
    from cadenza.musiccaps.audit import load_assignments as load_audit_assignments

    path = Path(audit_dir) / "assignments.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: audit assignments not found (run `cadenza audit` first)")
    out: dict[str, dict[str, list[str]]] = {}
    for ytid, rec in load_audit_assignments(audit_dir).items():
        groups = {g: list(v) for g, v in (rec.get("groups") or {}).items()}
        groups["rollup"] = [rec.get("rollup", "unspecified")]
        for ident in (ytid, *rec.get("windows", ())):
            out[str(ident)] = groups
    return out


def _groups_of(clip_key: str, ytid: str, assignments: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    return assignments.get(clip_key) or assignments.get(ytid) or {}


def generation_metrics(
    gen: list[dict[str, Any]],
    ref: list[dict[str, Any]],
    spec: TokenSpec,
    cfg: EvalConfig,
    train_ngrams: np.ndarray | None,
    mem_n: int,
) -> dict[str, Any]:
    """Everything comparing generated clips with held-out reference clips (same prompts)."""
    sem_g, sem_r = [g["semantic"] for g in gen], [r["semantic"] for r in ref]
    hist_g, hist_r = tm.histogram(sem_g, spec.semantic_vocab), tm.histogram(sem_r, spec.semantic_vocab)
    out: dict[str, Any] = {
        "clips": len(gen),
        "semantic": {
            "usage_generated": tm.codebook_usage(hist_g),
            "usage_heldout": tm.codebook_usage(hist_r),
            **tm.kl_js(hist_r, hist_g),
            "repetition_generated": tm.repetition_diversity(sem_g, cfg.ngram),
            "repetition_heldout": tm.repetition_diversity(sem_r, cfg.ngram),
        },
        "acoustic_per_codebook": [],
    }
    for k in range(spec.num_codebooks):
        cg = tm.histogram([g["acoustic"][k] for g in gen], spec.acoustic_vocab)
        cr = tm.histogram([r["acoustic"][k] for r in ref], spec.acoustic_vocab)
        out["acoustic_per_codebook"].append(
            {"usage_generated": tm.codebook_usage(cg), "usage_heldout": tm.codebook_usage(cr), **tm.kl_js(cr, cg)}
        )
    out["acoustic_repetition_codebook0"] = tm.repetition_diversity([g["acoustic"][0] for g in gen], cfg.ngram)
    if train_ngrams is not None:
        out["memorization_generated"] = tm.memorization(sem_g, train_ngrams, mem_n)
        out["memorization_heldout_baseline"] = tm.memorization(sem_r, train_ngrams, mem_n)
    if all("features" in c for c in gen + ref) and gen:
        out["frechet_audio_feature_distance"] = tm.frechet_distance(
            np.stack([g["features"] for g in gen]), np.stack([r["features"] for r in ref])
        )
    return out


def evaluate(
    run_dir: str | Path,
    heldout_dir: str,
    out_dir: str | Path,
    *,
    audit_dir: str | None = None,
    config: EvalConfig | None = None,
    decoder: Any | None = None,
    feature_fn: Callable[[np.ndarray, int], np.ndarray] = tm.audio_features,
    train_shards: str | None = None,
    codec_weights: str | None = None,
    codec_random_init: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    from cadenza.training.trainer import load_trained

    cfg = config or EvalConfig()
    run, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, spec, state = load_trained(run, device)
    run_cfg = json.loads((run / "config.json").read_text())
    seconds = cfg.seconds or float(run_cfg.get("crop_seconds", 10.0))
    manifest, shards = load_token_dir(heldout_dir)
    spec.check_same(TokenSpec.from_manifest(manifest, where=heldout_dir), f"held-out {heldout_dir} vs run {run}")
    assignments = load_assignments(audit_dir)

    eval_stream = TokenStream(shards, spec, LoaderConfig(cfg.batch_size, seconds, train=False))
    nll = heldout_nll(model, make_loader(eval_stream), device)
    per_clip = nll.pop("per_clip")
    data_counts = {
        "corrupt_samples": eval_stream.counts.corrupt_samples,
        "unreadable_shards": eval_stream.counts.unreadable_shards,
    }

    prompts = [
        c
        for c in _clips(TokenStream(shards, spec, LoaderConfig(cfg.batch_size, seconds, train=False)))
        if c["text"] is not None
    ][: cfg.num_samples]
    gen: list[dict[str, Any]] = []
    for i in range(0, len(prompts), cfg.batch_size):
        chunk = prompts[i : i + cfg.batch_size]
        text = torch.from_numpy(np.stack([c["text"] for c in chunk])).to(device)
        scfg = SampleConfig.from_dict({**cfg.sample.to_dict(), "seed": cfg.sample.seed + i})
        sem, ac = generate(model, text, spec, scfg, seconds=seconds)
        gen += [
            {"key": c["key"], "ytid": c["ytid"], "semantic": sem[j].cpu().numpy(), "acoustic": ac[j].cpu().numpy()}
            for j, c in enumerate(chunk)
        ]

    train_ngrams, mem_n = None, cfg.memorization_ngram or max(8, round(spec.semantic_rate))
    train_dir = train_shards or run_cfg.get("shards")
    if train_dir and Path(train_dir, "manifest.json").exists():
        _, train_list = load_token_dir(train_dir)
        hashes = [
            tm.ngram_hashes(c["semantic"], mem_n)
            for c in _clips(TokenStream(train_list, spec, LoaderConfig(64, 1e9, train=False)))
        ]
        train_ngrams = np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, np.uint64)

    wavs = []
    if prompts:
        dec = decoder or default_decoder(run, codec_weights, codec_random_init)
        sr = int(dec.sample_rate)
        wav_dir = out / "wavs"
        wav_dir.mkdir(exist_ok=True)
        for g, ref in zip(gen, prompts, strict=True):
            for tag, item in (("generated", g), ("heldout", ref)):
                audio = np.asarray(dec.decode(item["acoustic"].astype(np.int16)), dtype=np.float32)
                item["features"] = feature_fn(audio, sr)
                if cfg.write_wavs:
                    wavs.append(write_outputs(wav_dir, f"{tag}-{g['key']}", audio, sr, {"key": g["key"], "kind": tag}))

    metrics: dict[str, Any] = {
        "run": str(run),
        "step": state["step"],
        "random_weights": run_random_weights(run),
        "heldout": heldout_dir,
        "seconds": seconds,
        "config": cfg.to_dict(),
        "data": data_counts,
        "nll": nll,
        "generated": generation_metrics(gen, prompts, spec, cfg, train_ngrams, mem_n) if gen else None,
    }
    if assignments:
        metrics["by_group"] = breakdown(per_clip, gen, prompts, assignments, spec, cfg, train_ngrams, mem_n)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    from cadenza.training.eval_report import write_report

    write_report(out, metrics, gen, prompts, spec, wavs)
    return metrics


def breakdown(per_clip, gen, prompts, assignments, spec, cfg, train_ngrams, mem_n) -> dict[str, Any]:
    """Every metric per audit group: NLL over all held-out clips of the group, generation metrics over
    the prompts taken from the group's clips."""
    result: dict[str, dict[str, Any]] = {}
    for grouping in (*GROUPINGS, "rollup"):
        members: dict[str, list[str]] = {}
        for key, clip in per_clip.items():
            for g in _groups_of(key, clip["ytid"], assignments).get(grouping, []) or ["unassigned"]:
                members.setdefault(g, []).append(key)
        table = {}
        for g, keys in sorted(members.items()):
            row: dict[str, Any] = {"clips_heldout": len(keys)}
            for stage in ("semantic", "acoustic"):
                tok = sum(per_clip[k][f"{stage}_tokens"] for k in keys)
                row[f"nll_{stage}"] = sum(per_clip[k][stage] * per_clip[k][f"{stage}_tokens"] for k in keys) / max(
                    tok, 1
                )
            idx = [i for i, p in enumerate(prompts) if p["key"] in set(keys)]
            row["generated"] = (
                generation_metrics([gen[i] for i in idx], [prompts[i] for i in idx], spec, cfg, train_ngrams, mem_n)
                if idx
                else None
            )
            table[g] = row
        result[grouping] = table
    return result
