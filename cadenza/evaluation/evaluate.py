"""Sampling evaluation of a run on held-out token shards, optionally broken down by audit groups.

No model downloads by default. Besides held-out NLL and token statistics it reports the metrics that
tell a model that listens to its captions from one that does not (see tests/evaluation/test_metric_validity.py):
caption information gain (caption_gain.py), and, over per-clip embeddings of decoded audio
(embeddings.py: MFCC by default), KAD and FD against a half-split reference floor, prompt adherence
of a classifier fitted on the references, and the pull toward the mainstream per label (gen_metrics.py).
References are the held-out clips resynthesized by the same codec, so codec artefacts do not count
against the model. Outputs in OUT: metrics.json, report.html (+ PNG plots), wavs/.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.common.config import StageConfig
from cadenza.evaluation import gen_metrics as gm
from cadenza.evaluation import token_metrics as tm
from cadenza.evaluation.caption_gain import CaptionGain
from cadenza.evaluation.embeddings import make_embedder
from cadenza.formats import defaults
from cadenza.formats.assignments import load_assignments
from cadenza.formats.token_spec import TokenSpec, load_token_dir
from cadenza.training.data import LoaderConfig, TokenStream, make_loader
from cadenza.training.nll import heldout_nll
from cadenza.training.sampler import SampleConfig, default_decoder, generate, run_random_weights, write_outputs

log = logging.getLogger(__name__)
GROUPINGS = ("region", "genre", "instrument", "language", "vocal_gender")


CONTROLS = ("none", "shuffled_captions", "reconstructions")


@dataclass
class EvalConfig(StageConfig):
    num_samples: int = defaults.EVAL_SAMPLES  # held-out captions used as prompts
    seconds: float | None = None  # generation and NLL window; default: the run's training crop
    batch_size: int = 8
    ngram: int = 4  # for repetition/diversity
    memorization_ngram: int = 0  # 0: one second of semantic tokens (at least 8)
    sample: SampleConfig = field(default_factory=SampleConfig)
    write_wavs: bool = True
    embeddings: str = defaults.EMBEDDINGS  # mfcc | encodec | hf:PATH
    label_grouping: str = "genre"  # audit grouping whose (first) group labels a clip, when no labels are given
    mismatch_draws: int = 2  # mismatched captions scored per clip for the caption gain
    max_references: int = defaults.MAX_REFERENCES  # held-out clips decoded as references
    bootstrap: int = 300
    # validity controls (tests and benchmarks): captions shuffled among the held-out clips before
    # scoring and sampling; or other held-out clips of the same label, resynthesized, as "samples"
    control: str = "none"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalConfig:
        d = dict(d)
        if isinstance(d.get("sample"), dict):
            d["sample"] = SampleConfig.from_dict(d["sample"])
        return super().from_dict(d)


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


def load_labels(path: str | None) -> dict[str, str] | None:
    """Clip labels for adherence: a JSON object {clip key or ytid: label}, or the demo dataset's
    demo-manifest.json (its styles)."""
    if not path:
        return None
    from cadenza.formats.storage import read_json

    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("clips"), list):
        return {str(c["ytid"]): str(c["style"]) for c in data["clips"] if "ytid" in c and "style" in c}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object {{clip key or ytid: label}} or a demo-manifest.json")
    return dict(data)


def _groups_of(ytid: str, assignments: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """A clip's audit groups per grouping (every window of a ytid has its first window's); the roll-up is one
    more grouping. {} for a clip the audit does not know."""
    rec = assignments.get(ytid)
    if rec is None:
        return {}
    return {**(rec.get("groups") or {}), "rollup": [rec.get("rollup", "unspecified")]}


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


def clip_labels(
    clips: list[dict[str, Any]], labels: dict[str, str] | None, assignments: dict[str, dict[str, Any]],
    grouping: str,
) -> list[str | None]:
    """Each clip's label: from `labels` (clip key or ytid -> label), else its first audit group."""
    out: list[str | None] = []
    for c in clips:
        if labels:
            out.append(labels.get(c["key"]) or labels.get(c["ytid"]))
        else:
            groups = _groups_of(c["ytid"], assignments).get(grouping) or []
            out.append(groups[0] if groups else None)
    return out


def _shuffle_captions(clips: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Every clip gets another clip's caption (a seeded permutation rolled by one: nobody keeps its own)."""
    order = np.random.default_rng(seed).permutation(len(clips))
    donor = {int(order[i]): int(order[(i + 1) % len(order)]) for i in range(len(order))}
    return [{**c, "text": clips[donor[i]]["text"]} for i, c in enumerate(clips)]


def _reconstruction_samples(prompts, refs, labels) -> list[dict[str, Any]]:
    """The "perfect model" control: for each prompt, another held-out clip of the same label (itself if none)."""
    out = []
    for i, p in enumerate(prompts):
        same = [j for j, r in enumerate(refs) if labels[j] is not None and labels[j] == labels[i]
                and r["key"] != p["key"]]
        src = refs[same[i % len(same)]] if same else p
        out.append({"key": p["key"], "ytid": p["ytid"], "semantic": src["semantic"], "acoustic": src["acoustic"],
                    "source_key": src["key"]})
    return out


def _generate(model, prompts, spec, cfg: EvalConfig, seconds: float, device: str) -> list[dict[str, Any]]:
    gen: list[dict[str, Any]] = []
    for i in range(0, len(prompts), cfg.batch_size):
        chunk = prompts[i : i + cfg.batch_size]
        text = torch.from_numpy(np.stack([c["text"] for c in chunk]).astype(np.float32)).to(device)
        scfg = SampleConfig.from_dict({**cfg.sample.to_dict(), "seed": cfg.sample.seed + i})
        sem, ac = generate(model, text, spec, scfg, seconds=seconds)
        gen += [
            {"key": c["key"], "ytid": c["ytid"], "semantic": sem[j].cpu().numpy(), "acoustic": ac[j].cpu().numpy()}
            for j, c in enumerate(chunk)
        ]
    return gen


def evaluate(
    run_dir: str | Path,
    heldout_dir: str,
    out_dir: str | Path,
    *,
    audit_dir: str | None = None,
    labels: dict[str, str] | None = None,
    config: EvalConfig | None = None,
    decoder: Any | None = None,
    train_shards: str | None = None,
    codec_weights: str | None = None,
    codec_random_init: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """`labels` (clip key or ytid -> label, e.g. the demo's styles) label clips for adherence and the
    mainstream pull; without it the audit's `config.label_grouping` does."""
    from cadenza.training.trainer import load_trained

    cfg = config or EvalConfig()
    if cfg.control not in CONTROLS:
        raise ValueError(f"EvalConfig.control must be one of {CONTROLS}, not {cfg.control!r}")
    run, out = Path(run_dir), Path(out_dir)
    model, spec, state = load_trained(run, device)
    dec = decoder or default_decoder(run, codec_weights, codec_random_init)
    embed = make_embedder(cfg.embeddings, dec)  # a missing embedding model fails before any work
    out.mkdir(parents=True, exist_ok=True)
    run_cfg = json.loads((run / "config.json").read_text())
    seconds = cfg.seconds or float(run_cfg.get("crop_seconds", 10.0))
    manifest, shards = load_token_dir(heldout_dir)
    spec.check_same(TokenSpec.from_manifest(manifest, where=heldout_dir), f"held-out {heldout_dir} vs run {run}")
    assignments = load_assignments(audit_dir) if audit_dir else {}

    eval_stream = TokenStream(shards, spec, LoaderConfig(cfg.batch_size, seconds, train=False))
    nll = heldout_nll(model, make_loader(eval_stream), device)
    per_clip = nll.pop("per_clip")
    data_counts = {
        "corrupt_samples": eval_stream.counts.corrupt_samples,
        "unreadable_shards": eval_stream.counts.unreadable_shards,
    }
    refs = [
        c
        for c in _clips(TokenStream(shards, spec, LoaderConfig(cfg.batch_size, seconds, train=False)))
        if c["text"] is not None
    ][: cfg.max_references]
    if cfg.control == "shuffled_captions" and len(refs) > 1:
        refs = _shuffle_captions(refs, cfg.sample.seed)
    ref_labels = clip_labels(refs, labels, assignments, cfg.label_grouping)
    caption_gain = CaptionGain(model, refs, spec, groups=ref_labels, draws=cfg.mismatch_draws,
                               batch_size=cfg.batch_size, device=device, seed=cfg.sample.seed)

    prompts = refs[: cfg.num_samples]
    if cfg.control == "reconstructions":
        gen = _reconstruction_samples(prompts, refs, ref_labels)
    else:
        gen = _generate(model, prompts, spec, cfg, seconds, device)

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
    sr = int(dec.sample_rate)
    wav_dir = out / "wavs"
    wav_dir.mkdir(exist_ok=True)
    for tag, items in (("generated", gen), ("heldout", refs)):
        for i, item in enumerate(items):
            codes = item["acoustic"].astype(np.int16)
            audio = np.asarray(dec.decode(codes), dtype=np.float32)
            item["features"] = embed(audio, sr, codes)
            if cfg.write_wavs and i < len(prompts):
                meta = {"key": item["key"], "kind": tag}
                wavs.append(write_outputs(wav_dir, f"{tag}-{item['key']}", audio, sr, meta))

    metrics: dict[str, Any] = {
        "run": str(run),
        "step": state["step"],
        "random_weights": run_random_weights(run),
        "heldout": heldout_dir,
        "seconds": seconds,
        "config": cfg.to_dict(),
        "control": cfg.control,
        "embeddings": cfg.embeddings,
        "data": data_counts,
        "nll": nll,
        "caption_gain": caption_gain.summary(),
        "generated": generation_metrics(gen, prompts, spec, cfg, train_ngrams, mem_n) if gen else None,
    }
    metrics.update(audio_metrics(gen, refs, ref_labels, cfg.bootstrap, cfg.sample.seed))
    if assignments:
        metrics["by_group"] = breakdown(per_clip, gen, prompts, assignments, spec, cfg, train_ngrams, mem_n,
                                        caption_gain)
        if not labels:  # the audit's label grouping labelled the clips: its table gets their adherence and pull
            _attach_label_metrics(metrics["by_group"].get(cfg.label_grouping) or {}, metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    from cadenza.evaluation.report import write_report

    write_report(out, metrics, gen, prompts, spec, wavs)
    return metrics


def _token_histogram(tokens: np.ndarray, vocab: int) -> np.ndarray:
    h = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab)[:vocab].astype(np.float64)
    return h / max(h.sum(), 1.0)


def audio_metrics(gen, refs, ref_labels, boots: int, seed: int) -> dict[str, Any]:
    """KAD/FD against the reference floor; adherence and mainstream pull where clips have labels."""
    out: dict[str, Any] = {}
    if len(gen) < 2 or len(refs) < 4:
        out["distances"] = {"skipped": f"needs at least 2 samples and 4 references ({len(gen)}, {len(refs)})"}
        return out
    g_emb, r_emb = np.stack([g["features"] for g in gen]), np.stack([r["features"] for r in refs])
    out["distances"] = gm.distances(g_emb, r_emb, boots=boots, seed=seed)
    known = [i for i, lab in enumerate(ref_labels) if lab is not None]
    gen_known = [i for i in range(len(gen)) if ref_labels[i] is not None]
    if known and gen_known:
        rl = [str(ref_labels[i]) for i in known]
        gl = [str(ref_labels[i]) for i in gen_known]
        out["adherence"] = gm.adherence(r_emb[known], rl, g_emb[gen_known], gl)
        out["mainstream_pull"] = gm.mainstream_pull(r_emb[known], rl, g_emb[gen_known], gl)
        # the same classifier on semantic-token histograms: the semantic stage's adherence, before the
        # acoustic stage and the codec (which a random-init codec, or a weak acoustic stage, would blur)
        vocab = int(max(np.concatenate([c["semantic"] for c in (*gen, *refs)]).max() + 1, 1))
        r_tok, g_tok = (np.stack([_token_histogram(c["semantic"], vocab) for c in items]) for items in (refs, gen))
        out["adherence_semantic_tokens"] = gm.adherence(r_tok[known], rl, g_tok[gen_known], gl)
    else:
        out["adherence"] = {"skipped": "no clip has a label (pass labels or an audit with the label grouping)"}
    return out


def _attach_label_metrics(table: dict[str, Any], metrics: dict[str, Any]) -> None:
    per_label = (metrics.get("adherence") or {}).get("per_label") or {}
    pull = (metrics.get("mainstream_pull") or {}).get("labels") or {}
    for group, row in table.items():
        if group in per_label:
            row["adherence"] = per_label[group]
        if group in pull:
            row["mainstream_pull"] = pull[group]


def breakdown(per_clip, gen, prompts, assignments, spec, cfg, train_ngrams, mem_n, caption_gain) -> dict[str, Any]:
    """Every metric per audit group: NLL and caption gain over all held-out clips of the group,
    generation metrics over the prompts taken from the group's clips."""
    result: dict[str, dict[str, Any]] = {}
    for grouping in (*GROUPINGS, "rollup"):
        members: dict[str, list[str]] = {}
        for key, clip in per_clip.items():
            for g in _groups_of(clip["ytid"], assignments).get(grouping, []) or ["unassigned"]:
                members.setdefault(g, []).append(key)
        table = {}
        for g, keys in sorted(members.items()):
            row: dict[str, Any] = {"clips_heldout": len(keys)}
            for stage in ("semantic", "acoustic"):
                tok = sum(per_clip[k][f"{stage}_tokens"] for k in keys)
                row[f"nll_{stage}"] = sum(per_clip[k][stage] * per_clip[k][f"{stage}_tokens"] for k in keys) / max(
                    tok, 1
                )
            row["caption_gain"] = caption_gain.summary(set(keys))
            idx = [i for i, p in enumerate(prompts) if p["key"] in set(keys)]
            row["generated"] = (
                generation_metrics([gen[i] for i in idx], [prompts[i] for i in idx], spec, cfg, train_ngrams, mem_n)
                if idx
                else None
            )
            table[g] = row
        result[grouping] = table
    return result
