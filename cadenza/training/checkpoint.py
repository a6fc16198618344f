"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

checkpoints/step-00000100/
  model.safetensors       model weights
  optimizer.safetensors   every tensor of the optimizer state ("state.<param index>.<name>")
  state.json              step, optimizer param groups and non-tensor state, LR schedule, RNG states
                          (base64), data position, model configs, token spec
checkpoints/latest.json   {"path": "step-00000100"}, written after the directory is complete

A checkpoint may come from someone else: loading reads only these files, never unpickles, and refuses
anything else (a pickle where a safetensors file should be, tensors of other shapes, a `latest.json`
pointing outside `checkpoints/`) with a CheckpointError naming the file.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cadenza.formats.storage import read_json, write_json_atomic


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
    params = [p for g in opt.param_groups for p in g["params"]]
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        _, idx, name = key.split(".", 2)
        # torch accepts any tensor here and only fails (or misbehaves) at the next step
        if not 0 <= int(idx) < len(params):
            raise ValueError(f"{key}: no parameter {idx} (the optimizer has {len(params)})")
        if val.dim() > 0 and val.shape != params[int(idx)].shape:
            raise ValueError(f"{key}: shape {tuple(val.shape)} != parameter shape {tuple(params[int(idx)].shape)}")
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


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used as one; the message names the file."""


STEP_DIR = re.compile(r"step-\d{8}")


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    marker = Path(run_dir) / "checkpoints" / "latest.json"
    if not marker.exists():
        return None
    try:
        name = read_json(str(marker))["path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{marker}: not a checkpoint marker ({type(exc).__name__}: {exc})") from exc
    # only a step directory next to the marker: never a path elsewhere, a file, or a pickle
    if not isinstance(name, str) or not STEP_DIR.fullmatch(name):
        raise CheckpointError(f"{marker}: refusing checkpoint path {name!r} (expected step-NNNNNNNN)")
    ckpt = marker.parent / name
    if not ckpt.is_dir():
        raise CheckpointError(f"{ckpt}: not a checkpoint directory")
    return ckpt


def read_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / "state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint state ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint state must be a JSON object")
    return state


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from exc


def load_weights(ckpt: Path, model: torch.nn.Module) -> None:
    path = ckpt / "model.safetensors"
    try:
        model.load_state_dict(_tensors(path))
    except RuntimeError as exc:  # missing, unexpected or differently shaped tensors
        raise CheckpointError(f"{path}: does not fit the model: {exc}") from exc


def load_optimizer(ckpt: Path, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    path = ckpt / "optimizer.safetensors"
    try:
        optimizer_from_flat(opt, _tensors(path), state["optimizer"])
    except (KeyError, ValueError, RuntimeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: does not fit the optimizer: {type(exc).__name__}: {exc}") from exc
