"""Metric validity: do the headline metrics rank a good model above broken ones?

Four "models" are evaluated on the same held-out clips:
- trained: the run as it is;
- untrained: the same architecture and seed at step 0;
- shuffled: the trained run, with the held-out captions shuffled among the clips before scoring and sampling;
- perfect: other held-out clips of the same label, resynthesized by the codec, used as samples.

Expected orders: caption gain trained > shuffled ~ untrained ~ 0; adherence perfect >= trained >
shuffled ~ untrained; KAD and FD perfect < trained < untrained. Caption gain is a property of a
likelihood model; "perfect" has none, so its caption gain is the trained model's (the reconstructions
change only the samples) and is not ranked: "perfect >= trained" would hold by construction. Every
metric gets a verdict; one that fails to separate the models says so rather than disappearing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from cadenza.formats.token_spec import TokenSpec
from cadenza.training import checkpoint as ckpt_io
from cadenza.training.model import MusicLM

MODELS = ("perfect", "trained", "shuffled", "untrained")


def make_untrained_run(run_dir: str | Path, dest: str | Path) -> Path:
    """A copy of a run's config with a step-0 checkpoint: the model as `train` builds it before any step."""
    run, out = Path(run_dir), Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokens_manifest.json"):
        shutil.copy(run / name, out / name)
    cfg = json.loads((run / "config.json").read_text())
    spec = TokenSpec.from_manifest(json.loads((run / "tokens_manifest.json").read_text()))
    torch.manual_seed(int(cfg.get("seed", 0)))  # as train() seeds rank 0 before building the model
    model = MusicLM.build(cfg.get("model", "tiny"), spec)
    state = {"model_configs": model.configs(), "token_spec": spec.to_dict(), "untrained": True}
    ckpt_io.save_checkpoint(out, 0, model, torch.optim.AdamW(model.parameters()), state)
    return out


def headline(m: dict[str, Any]) -> dict[str, Any]:
    """The numbers the verdicts compare, with their CIs, from one metrics.json."""
    cg, d, a = m.get("caption_gain") or {}, m.get("distances") or {}, m.get("adherence") or {}
    return {
        "caption_gain_semantic": (cg.get("semantic") or {}).get("gain"),
        "caption_gain_semantic_ci95": (cg.get("semantic") or {}).get("ci95"),
        "caption_gain_acoustic": (cg.get("acoustic") or {}).get("gain"),
        "caption_gain_acoustic_ci95": (cg.get("acoustic") or {}).get("ci95"),
        "adherence_semantic_tokens": (m.get("adherence_semantic_tokens") or {}).get("accuracy"),
        "adherence_semantic_tokens_ci95": (m.get("adherence_semantic_tokens") or {}).get("ci95"),
        "adherence": a.get("accuracy"),
        "adherence_ci95": a.get("ci95"),
        "chance": a.get("chance"),
        "kad": (d.get("kad") or {}).get("value"),
        "kad_ci95": (d.get("kad") or {}).get("ci95"),
        "kad_floor": (d.get("kad_floor") or {}).get("value"),
        "fd": (d.get("fd") or {}).get("value"),
        "fd_floor": (d.get("fd_floor") or {}).get("value"),
        "mainstream_flagged": (m.get("mainstream_pull") or {}).get("flagged"),
    }


def _no_gain(row: dict[str, Any], key: str, trained_gain: float) -> bool:
    """No evidence of caption gain: the CI reaches down to zero, or the gain is under a tenth of the
    trained model's (a step-0 model's gain is ~1e-4 nats with a CI too tight to hold zero). A broken
    model may score *below* zero: with shuffled captions its "own" caption is usually a wrong one."""
    return row[f"{key}_ci95"][0] <= 0.0 or abs(row[key]) < 0.1 * abs(trained_gain)


def _not_above_chance(row: dict[str, Any], key: str) -> bool:
    """No evidence of adherence: the CI reaches down to chance. With shuffled captions a model that
    follows them well lands *below* chance, since it then renders another label's caption."""
    return row[f"{key}_ci95"][0] <= row["chance"]


def verdicts(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric: whether the four models are ordered as a valid metric must order them."""
    p, t, s, u = (rows[k] for k in MODELS)
    out: dict[str, dict[str, Any]] = {}
    for stage in ("semantic", "acoustic"):
        key = f"caption_gain_{stage}"
        ok = (  # "perfect" is left out: its caption gain is the trained model's
            t[f"{key}_ci95"][0] > 0  # trained: CI excludes zero
            and t[key] > s[key]
            and t[key] > u[key]
            and _no_gain(s, key, t[key])
            and _no_gain(u, key, t[key])
        )
        out[key] = {"expected": "trained > shuffled ~ untrained ~ 0", "separates": bool(ok)}
    for key in ("adherence", "adherence_semantic_tokens"):
        ok = (
            p[key] >= t[key]
            and t[f"{key}_ci95"][0] > t["chance"]
            and t[key] > s[key]
            and t[key] > u[key]
            and _not_above_chance(s, key)
            and _not_above_chance(u, key)
        )
        out[key] = {"expected": "perfect >= trained > shuffled ~ untrained ~ chance", "separates": bool(ok)}
    for key in ("kad", "fd"):
        out[key] = {"expected": "perfect < trained < untrained", "separates": bool(p[key] < t[key] < u[key])}
    return out


def run_validity(run_dir: str | Path, heldout_dir: str, out_dir: str | Path, *, config=None,
                 **evaluate_kwargs: Any) -> dict[str, Any]:
    """Evaluate the four models (one `evaluate` output dir each under out_dir) and judge every metric."""
    from cadenza.evaluation.evaluate import EvalConfig, evaluate

    out = Path(out_dir)
    base = config or EvalConfig()
    untrained = make_untrained_run(run_dir, out / "untrained-run")
    plan = {"trained": (run_dir, "none"), "untrained": (untrained, "none"),
            "shuffled": (run_dir, "shuffled_captions"), "perfect": (run_dir, "reconstructions")}
    rows = {}
    for name, (run, control) in plan.items():
        cfg = EvalConfig.from_dict({**base.to_dict(), "control": control})
        rows[name] = headline(evaluate(run, heldout_dir, out / name, config=cfg, **evaluate_kwargs))
    return {"models": rows, "verdicts": verdicts(rows)}
