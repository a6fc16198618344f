"""`cadenza codec eval`: how well a codec reconstructs audio shards, overall and per audit group.

Works for any codec dir: one cadenza trained (or built at random, labelled so) and Meta's save_pretrained
dirs alike. Every clip goes through the tokenizer exactly as `cadenza tokenize` runs it (encode_one, then
decode). Reported: log-mel L1, multi-resolution STFT distance and SI-SNR (cadenza.codec.losses), codebook
usage and entropy per level, nominal and entropy-coded bitrate; and what a listener hears: chroma
similarity, spectral flatness ratio, f0 agreement (cadenza.codec.metrics). Beside the codec, every run
measures references on the same clips (Opus at the codec's bitrate, shaped noise, another clip, the
original itself) and records per metric whether it ranks them as a listener would (cadenza.codec.validity):
the headline is the first of chroma similarity, flatness ratio, log-mel L1 that does. Selected clips that
could not be decoded are counted, with the reason. With an audit dir, each is broken down
per group of every grouping (region, genre, ...) with 95% CIs, and a group reconstructed significantly
worse than the rest on any of the three distances (one-sided Welch t-tests, Benjamini-Hochberg over every
group and metric) is flagged, with the metrics it is worse on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.codec.losses import METRIC_DIRECTION
from cadenza.codec.measure import METRICS, REFERENCES
from cadenza.codec.metrics import aggregate, listener_reference
from cadenza.codec.metrics.pitch import PITCH_RATE, PITCH_SECONDS
from cadenza.codec.references import SHAPED_NOISE_BANDS, opus_kbps
from cadenza.codec.validity import validity
from cadenza.common.config import StageConfig
from cadenza.common.sources import SourceError
from cadenza.formats.storage import write_bytes_atomic, write_json_atomic

# a group is flagged when it is reconstructed worse than the rest on any of these. log-mel alone misses a
# codec that renders every input as broadband noise: noise-like inputs then score like music on it
FLAG_METRICS = tuple(METRIC_DIRECTION)  # log-mel L1, STFT distance, SI-SNR
FLAG_Q = 0.05


@dataclass
class CodecEvalConfig(StageConfig):
    codec: str  # codec dir (save_pretrained, with or without cadenza's codec files)
    shards: str  # ingest output dir (audio shards)
    out: str
    audit: str | None = None  # audit dir: per-group breakdown
    max_clips: int | None = None  # spread over all shards; None: every clip
    min_group_size: int = 3  # groups with fewer clips are listed but not tested
    progress: bool = True
    torch_threads: int | None = 1  # as for codec training: one thread, robust on a shared 2-core machine


def load_codec_dir(codec_dir: str):
    """The EncodecTokenizer of a codec dir: cadenza's record names it, else its sampling rate does."""
    from cadenza.tokenizers.acoustic import CODEC_META, CODECS, encodec_config
    from cadenza.tokenizers.acoustic_loading import load_acoustic

    path = Path(codec_dir)
    if not (path / "config.json").is_file():
        raise SourceError(f"--codec {codec_dir}: no config.json there (expected a save_pretrained codec dir, "
                          "e.g. the output of `cadenza codec train`)")
    if (path / CODEC_META).is_file():
        name = json.loads((path / CODEC_META).read_text())["name"]
    else:
        rate = json.loads((path / "config.json").read_text()).get("sampling_rate")
        names = [n for n in CODECS if encodec_config(n).sampling_rate == rate]
        if not names:
            raise SourceError(f"--codec {codec_dir}: a {rate} Hz codec; cadenza knows {sorted(CODECS)}")
        name = names[0]
    return load_acoustic(name, weights=path)


def codebook_stats(hist: np.ndarray, frame_rate: float) -> dict[str, Any]:
    """Per level: share of codes used, entropy (bits) and perplexity; bitrate if entropy-coded."""
    levels = []
    for row in hist:
        total = row.sum()
        p = row[row > 0] / max(total, 1)
        entropy = float(-(p * np.log2(p)).sum()) if total else 0.0
        levels.append({"used": float((row > 0).mean()), "entropy_bits": entropy, "perplexity": 2 ** entropy})
    return {"levels": levels, "entropy_kbps": sum(lv["entropy_bits"] for lv in levels) * frame_rate / 1000}


def _reconstruct_all(tok, cfg: CodecEvalConfig) -> tuple[list[dict[str, Any]], list[np.ndarray], dict[str, str]]:
    """Per clip: the codec's metrics and its references'; the codebook histograms; the undecodable clips."""
    import librosa

    from cadenza.codec.data import audio_shard_paths
    from cadenza.codec.measure import ReferenceSet, clip_metrics
    from cadenza.codec.references import opus_ffmpeg
    from cadenza.formats.audio import load_clips, select_clips
    from cadenza.training.runlog import step_progress

    opus_ffmpeg()  # no libopus: fail before any clip is reconstructed
    selection = select_clips(audio_shard_paths(cfg.shards), cfg.max_clips or 1 << 62)
    references = ReferenceSet(tok.sample_rate, tok.hop, opus_kbps(nominal_kbps(tok)))
    bar = step_progress("codec eval", len(selection), 0, cfg.progress)
    rows, hists, undecodable = [], [], {}
    for i, (key, audio, sr) in enumerate(load_clips(selection, undecodable)):
        if sr != tok.sample_rate:
            audio = librosa.resample(audio, orig_sr=sr, target_sr=tok.sample_rate)
        codes = tok.encode_one(audio)
        listener = listener_reference(audio, tok.sample_rate)
        rows.append({"key": key, "ytid": key[:11], "seconds": len(audio) / tok.sample_rate,
                     **clip_metrics(listener, audio, tok.decode(codes), tok.sample_rate),
                     "references": references.measure(key, audio, listener)})
        hists.append(np.stack([np.bincount(c, minlength=tok.vocab_size) for c in codes.astype(np.int64)]))
        if bar is not None:
            bar.update(bar.task_ids[0], completed=i + 1, loss=rows[-1]["log_mel_l1"])
    if bar is not None:
        bar.stop()
    if not rows:
        raise SourceError(f"--shards {cfg.shards}: no readable clips to evaluate the codec on")
    references.close_the_ring(rows)
    return rows, hists, undecodable


def nominal_kbps(tok) -> float:
    return tok.num_codebooks * math.log2(tok.vocab_size) * tok.frame_rate / 1000


def _metrics_of(rows: list[dict[str, Any]], reference: str | None = None) -> dict[str, Any]:
    """Every metric aggregated over `rows`: the codec's, or a reference's (over the rows that have it)."""
    values = [r if reference is None else r["references"][reference] for r in rows
              if reference is None or reference in r["references"]]
    return {m: aggregate(m, [v[m] for v in values]) for m in METRICS} if values else {}


def _summary(rows: list[dict[str, Any]], hists: list[np.ndarray], frame_rate: float) -> dict[str, Any]:
    return {**_metrics_of(rows), "codebooks": codebook_stats(np.sum(hists, axis=0), frame_rate)}


def _undecodable(undecodable: dict[str, str], assignments: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The selected clips that could not be decoded, with why, overall and per group."""
    by_group: dict[str, dict[str, list[dict[str, str]]]] = {}
    for key, why in sorted(undecodable.items()):
        groups = ((assignments or {}).get(key[:11]) or {}).get("groups") or {}
        for grouping, names in groups.items():
            for name in names or []:
                by_group.setdefault(grouping, {}).setdefault(name, []).append({"key": key, "reason": why})
    return {"count": len(undecodable), "clips": [{"key": k, "reason": w} for k, w in sorted(undecodable.items())],
            **({"by_group": {g: {n: {"count": len(c), "clips": c} for n, c in groups.items()}
                             for g, groups in by_group.items()}} if assignments is not None else {})}


def group_breakdown(rows: list[dict[str, Any]], hists: list[np.ndarray], assignments: dict[str, dict[str, Any]],
                    frame_rate: float, min_group_size: int) -> dict[str, dict[str, Any]]:
    """grouping -> group -> metrics with CIs, the test against the rest of the clips, and the flag."""
    from scipy import stats

    from cadenza.audit import benjamini_hochberg

    members: dict[str, dict[str, list[int]]] = {}
    for i, row in enumerate(rows):
        groups = (assignments.get(row["ytid"]) or {}).get("groups") or {}
        for grouping, names in groups.items():
            for name in names or []:
                members.setdefault(grouping, {}).setdefault(name, []).append(i)
    values = {m: np.array([r[m] for r in rows]) for m in FLAG_METRICS}
    table: dict[str, dict[str, Any]] = {}
    tests: list[tuple[str, str, str, float]] = []
    for grouping, groups in sorted(members.items()):
        for name, idx in sorted(groups.items()):
            entry = _metrics_of([rows[i] for i in idx])
            entry["references"] = {ref: _metrics_of([rows[i] for i in idx], ref) for ref in REFERENCES}
            entry["codebooks"] = codebook_stats(np.sum([hists[i] for i in idx], axis=0), frame_rate)
            rest = np.setdiff1d(np.arange(len(rows)), idx)
            entry.update(n=len(idx), p=None, q=None, flag=False, worse_on=[], tests={})
            if len(idx) >= min_group_size and len(rest) >= min_group_size:
                for m in FLAG_METRICS:
                    res = stats.ttest_ind(values[m][idx], values[m][rest], equal_var=False,
                                          alternative="greater" if METRIC_DIRECTION[m] == "lower" else "less")
                    p = float(res.pvalue) if np.isfinite(res.pvalue) else 1.0
                    entry["tests"][m] = {"p": p, "rest_mean": float(values[m][rest].mean())}
                    tests.append((grouping, name, m, p))
            table.setdefault(grouping, {})[name] = entry
    # one correction over every (group, metric) test: a codec may fail a group on any of the three distances
    for (grouping, name, m, _), q in zip(tests, benjamini_hochberg([t[3] for t in tests]), strict=True):
        entry = table[grouping][name]
        entry["tests"][m]["q"] = float(q)
        if q < FLAG_Q:
            entry["worse_on"].append(m)
    for groups in table.values():
        for entry in groups.values():
            if entry["tests"]:
                best = min(entry["tests"].values(), key=lambda t: t["q"])
                entry.update(p=best["p"], q=best["q"], flag=bool(entry["worse_on"]))
    return table


def evaluate_codec(config: CodecEvalConfig) -> dict[str, Any]:
    """Write OUT/metrics.json, OUT/clips.jsonl, plots and OUT/report.html; return the metrics."""
    from cadenza.training.runlog import torch_threads

    with torch_threads(config.torch_threads):
        return _evaluate(config)


def headline_of(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The headline metric (the first candidate that ranks the references right): codec and references."""
    name = metrics["validity"]["headline"]
    if name is None:
        return None
    return {"metric": name, "codec": metrics["overall"][name]["mean"],
            **{ref: summary[name]["mean"] for ref, summary in metrics["references"].items() if name in summary}}


def _evaluate(config: CodecEvalConfig) -> dict[str, Any]:
    from cadenza.codec.report import write_codec_report

    cfg = config
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise SourceError(f"--out {cfg.out}: is a file; give a directory")
    tok = load_codec_dir(cfg.codec)
    assignments = None
    if cfg.audit:
        from cadenza.formats.assignments import ASSIGNMENTS_FILE, load_assignments

        if not (Path(cfg.audit) / ASSIGNMENTS_FILE).is_file():
            raise SourceError(f"--audit {cfg.audit}: no {ASSIGNMENTS_FILE} there (run `cadenza audit` first)")
        assignments = load_assignments(cfg.audit)
    rows, hists, undecodable = _reconstruct_all(tok, cfg)
    desc = tok.describe()
    record_path = Path(cfg.codec) / "codec.json"
    metrics: dict[str, Any] = {
        "codec": {**desc, "dir": cfg.codec,
                  "training": json.loads(record_path.read_text()) if record_path.is_file() else None},
        "random_weights": bool(desc.get("random_weights")),
        "shards": cfg.shards, "clips": len(rows),
        "undecodable": _undecodable(undecodable, assignments),
        "bitrate_kbps": nominal_kbps(tok),
        "overall": _summary(rows, hists, tok.frame_rate),
        "references": {ref: _metrics_of(rows, ref) for ref in REFERENCES},
        "reference_settings": {
            "opus_kbps": opus_kbps(nominal_kbps(tok)),
            "shaped_noise": f"noise with the clip's {SHAPED_NOISE_BANDS} mel-band energies in every frame of "
                            f"{tok.hop} samples, seeded by the clip's key",
            "another_clip": "the previous clip in evaluation order (the first clip: the last)"},
        "pitch": {"analysed_seconds": PITCH_SECONDS, "rate_hz": PITCH_RATE,
                  "clear_pitch_clips": sum(r["f0_agreement"] is not None for r in rows),
                  "not_applicable": sum(r["f0_agreement"] is None for r in rows),
                  "note": f"pYIN on each clip's first {PITCH_SECONDS:g} s only (it is slow); clips without one "
                          "clear pitch are not applicable to f0 agreement"},
        "flag_rule": f"worse than the rest of the clips on any of {', '.join(FLAG_METRICS)}: one-sided Welch "
                     f"t-test per metric, Benjamini-Hochberg over every group and metric, q < {FLAG_Q}, "
                     f"groups of at least {cfg.min_group_size} clips",
    }
    metrics["validity"] = validity(list(METRICS), metrics["references"])
    metrics["headline"] = headline_of(metrics)
    if assignments is not None:
        metrics["by_group"] = group_breakdown(rows, hists, assignments, tok.frame_rate, cfg.min_group_size)
        for grouping, groups in metrics["by_group"].items():
            for name, entry in groups.items():
                lost = metrics["undecodable"]["by_group"].get(grouping, {}).get(name, {})
                entry["undecodable"] = lost.get("count", 0)
        metrics["flagged"] = [{"grouping": g, "group": n, "worse_on": e["worse_on"], "q": e["q"],
                               **{m: e[m]["mean"] for m in e["worse_on"]}}
                              for g, groups in metrics["by_group"].items() for n, e in groups.items() if e["flag"]]
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(str(out / "clips.jsonl"), "".join(json.dumps(r) + "\n" for r in rows).encode())
    metrics["plots"] = write_codec_report(out, metrics)
    write_json_atomic(str(out / "metrics.json"), metrics)
    return metrics
