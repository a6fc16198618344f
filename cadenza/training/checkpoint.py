"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

checkpoints/step-00000100/
  model.safetensors       model weights
  optimizer.safetensors   every tensor of the optimizer state ("state.<param index>.<name>")
  state.json              step, optimizer param groups and non-tensor state, LR schedule, RNG states
                          (base64), data position, model configs, token spec
checkpoints/latest.json   {"path": "step-00000100"}, written after the directory is complete
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cadenza.shards import read_json, write_json_atomic


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = val
    for idx, st in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(st)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> dict[str, Any]:
    """Every RNG a training step touches, as JSON."""

    def b64(t: torch.Tensor) -> str:
        return base64.b64encode(t.numpy().tobytes()).decode()

    py = random.getstate()
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "torch": b64(torch.get_rng_state()),
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    if torch.cuda.is_available():
        out["cuda"] = [b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    def unb64(s: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)

    torch.set_rng_state(unb64(state["torch"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([unb64(s) for s in state["cuda"]])


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, opt, state: dict[str, Any], keep: int = 3):
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    tensors, opt_meta = optimizer_to_flat(opt)
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": opt_meta}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_json_atomic(str(root / "latest.json"), {"path": final.name, "step": step})
    old = sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep] if keep > 0 else []
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    marker = Path(run_dir) / "checkpoints" / "latest.json"
    if not marker.exists():
        return None
    return Path(run_dir) / "checkpoints" / read_json(str(marker))["path"]


def read_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / "state.json").read_text())


def load_weights(ckpt: Path, model: torch.nn.Module) -> None:
    model.load_state_dict(load_file(ckpt / "model.safetensors"))


def load_optimizer(ckpt: Path, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    optimizer_from_flat(opt, load_file(ckpt / "optimizer.safetensors"), state["optimizer"])
