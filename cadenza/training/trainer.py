"""Training loop for both stages: AdamW, warmup + cosine, clipping, accumulation, bf16 autocast,
periodic validation, non-pickle checkpoints with exact resume, JSONL metrics, DDP via torchrun.

Run on N processes with `torchrun --nproc_per_node N -m cadenza.training.trainer CONFIG.json`
(or `cadenza train` under torchrun): each rank reads its own share of the shards; gloo on CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from cadenza.common.config import StageConfig
from cadenza.common.devices import resolve_device
from cadenza.formats import defaults
from cadenza.formats.storage import write_json_atomic
from cadenza.formats.token_spec import TokenSpec, load_token_dir
from cadenza.training import checkpoint as ckpt_io
from cadenza.training.data import LoaderConfig, TokenStream, load_weights, make_loader, merge_counts
from cadenza.training.model import PRESETS, MusicLM
from cadenza.training.nll import batch_to, heldout_nll
from cadenza.training.runlog import step_progress, truncate_metrics_log

log = logging.getLogger(__name__)

# defaults that differ per size (anything here can be overridden by a config file)
SIZE_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"batch_size": 8, "crop_seconds": 3.0, "lr": 3e-3, "warmup_steps": 20, "steps": 300},
    "small": {"batch_size": 16, "crop_seconds": 10.0, "lr": 3e-4, "warmup_steps": 500, "steps": 20000},
}


@dataclass
class TrainConfig(StageConfig):
    shards: str  # TOKENS dir
    out: str  # RUN dir
    model: str | dict[str, Any] = defaults.MODEL_PRESET  # preset name or ModelConfig fields
    steps: int = 300  # stop after this many optimizer steps
    schedule_steps: int | None = None  # length of the cosine schedule (default: steps)
    batch_size: int = 8  # per rank and micro-step
    grad_accum: int = 1
    crop_seconds: float = 3.0
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    precision: str = "auto"  # auto (bf16 on GPUs that support it) | bf16 (autocast, on CPU too) | fp32
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda
    seed: int = 0
    shuffle_buffer: int = 256
    num_workers: int = 0
    weights: str | None = None  # audit weights file
    val_shards: str | None = None
    val_every: int = 100
    val_batches: int = 20
    ckpt_every: int = 100
    keep_checkpoints: int = 3
    log_every: int = 10
    resume: bool = False
    progress: bool = True  # a progress bar on rank 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "betas": list(self.betas)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return super().from_dict({**d, "betas": tuple(d["betas"])} if "betas" in d else d)

    @classmethod
    def preset(cls, size: str, shards: str, out: str, **overrides: Any) -> TrainConfig:
        """A config for a preset size, or for a JSON file of TrainConfig fields when `size` is a path."""
        if size in PRESETS:
            base: dict[str, Any] = {"model": size, **SIZE_DEFAULTS[size]}
        else:
            base = json.loads(Path(size).read_text())
        base.update(shards=shards, out=out)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(base)


def lr_at(step: int, cfg: TrainConfig) -> float:
    total = cfg.schedule_steps or cfg.steps
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _dist_setup(device_name: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if resolve_device(device_name) == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def resolve_precision(precision: str, device: torch.device) -> str:
    """"bf16" or "fp32": auto is bf16 on CUDA GPUs that support it (no loss scaling needed), else fp32."""
    if precision not in defaults.PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(defaults.PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def _autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _stop_agreed(stop: Callable[[], bool] | None, world: int, device: torch.device) -> bool:
    """Whether any rank was asked to stop (all ranks must end at the same step)."""
    wanted = bool(stop is not None and stop())
    if world == 1:
        return wanted
    flag = torch.tensor([int(wanted)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def train(config: TrainConfig, stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train both stages; returns a summary (also written to RUN/train_summary.json).

    `stop()` is polled after every step: when it says so (e.g. on Ctrl-C), the step is checkpointed and
    training ends early; the summary then has "interrupted": True and no train_summary.json is written.
    """
    cfg = config
    rank, world, device = _dist_setup(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    run = Path(cfg.out)
    manifest, shards = load_token_dir(cfg.shards)
    spec = TokenSpec.from_manifest(manifest, where=f"{cfg.shards}/manifest.json")
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        write_json_atomic(str(run / "config.json"), cfg.to_dict())
        write_json_atomic(str(run / "tokens_manifest.json"), manifest)
    torch.manual_seed(cfg.seed + rank)  # ranks draw different CFG-dropout masks

    model = MusicLM.build(cfg.model, spec).to(device)
    opt = _make_optimizer(model, cfg)
    start_step, data_batches = 0, 0
    ckpt = ckpt_io.latest_checkpoint(run) if cfg.resume else None
    if ckpt is not None:
        state = ckpt_io.read_state(ckpt)
        try:
            saved_spec = TokenSpec.from_dict(state["token_spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ckpt_io.CheckpointError(f"{ckpt / 'state.json'}: {type(exc).__name__}: {exc}") from exc
        saved_spec.check_same(spec, f"{cfg.shards} vs checkpoint {ckpt}")
        if state["model_configs"] != model.configs():
            raise ValueError(f"{ckpt}: model config differs from this run's config")
        ckpt_io.load_weights(ckpt, model)
        ckpt_io.load_optimizer(ckpt, opt, state)
        start_step, data_batches = state["step"], state["data"]["batches_per_rank"]
        if (state["data"]["world_size"], state["data"]["num_workers"]) != (world, cfg.num_workers):
            log.warning(
                "resuming with another world size / worker count: the data order will differ from "
                "an uninterrupted run (same data, not the same sequence)"
            )
        if rank == 0:
            truncate_metrics_log(run / "metrics.jsonl", start_step)
            log.info("resumed from %s at step %d", ckpt, start_step)
    elif cfg.resume and rank == 0:  # killed before its first checkpoint: start over, without its metrics
        truncate_metrics_log(run / "metrics.jsonl", -1)

    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    loader_cfg = LoaderConfig(cfg.batch_size, cfg.crop_seconds, cfg.shuffle_buffer, cfg.seed, cfg.num_workers)
    stream = TokenStream(
        shards,
        spec,
        loader_cfg,
        weights=load_weights(cfg.weights),
        rank=rank,
        world_size=world,
        skip_batches=data_batches,
    )
    batches = iter(make_loader(stream))
    val = None
    if cfg.val_shards:
        val_manifest, val_shards = load_token_dir(cfg.val_shards)
        TokenSpec.from_manifest(val_manifest, where=cfg.val_shards).check_same(spec, f"validation {cfg.val_shards}")
        val_cfg = LoaderConfig(cfg.batch_size, cfg.crop_seconds, seed=cfg.seed, train=False)
        val = TokenStream(val_shards, spec, val_cfg)

    if ckpt is not None:  # last, so that nothing above (e.g. creating the loader) draws from restored RNGs
        rngs = state["rng"]
        ckpt_io.set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    metrics_path = run / "metrics.jsonl"
    counts_by_worker: dict[int, dict[str, Any]] = {}
    shards_seen: set[str] = set()
    model.train()
    t0, tokens, last_val = time.perf_counter(), 0, None
    step = start_step
    # losses summed since the last metrics line; checkpointed, so a resume logs the same averages
    pending = state.get("log_pending", {}) if ckpt is not None else {}
    log_acc: dict[str, float] = dict(pending.get("sums", {}))
    acc_steps = int(pending.get("steps", 0))
    bar = step_progress("train", cfg.steps, start_step, cfg.progress and rank == 0)
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        for micro in range(cfg.grad_accum):
            batch = next(batches)
            data_batches += 1
            counts_by_worker.update(batch.pop("counts"))
            shards_seen.update(batch["urls"])
            batch = batch_to(batch, device)
            sync = micro == cfg.grad_accum - 1 or world == 1
            with contextlib.nullcontext() if sync else ddp.no_sync(), _autocast(precision, device):
                out = ddp(batch)
                (out["loss"] / cfg.grad_accum).backward()
            tokens += int(batch["semantic_mask"].sum()) + int(batch["acoustic_mask"].sum()) * spec.num_codebooks
            for k in ("loss", "loss_semantic", "loss_acoustic"):
                log_acc[k] = log_acc.get(k, 0.0) + float(out[k].detach()) / cfg.grad_accum
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        acc_steps += 1
        if bar is not None:
            bar.update(bar.task_ids[0], completed=step, loss=float(out["loss"].detach()))
        if step % cfg.log_every == 0 or step == cfg.steps:
            n, acc_steps = acc_steps, 0
            elapsed = time.perf_counter() - t0
            line = {
                "step": step,
                "split": "train",
                "lr": lr,
                "grad_norm": grad_norm,
                **{k: v / n for k, v in log_acc.items()},
                "tokens_per_s": tokens * world / max(elapsed, 1e-9),
                "data": merge_counts(counts_by_worker),
            }
            log_acc, tokens, t0 = {}, 0, time.perf_counter()
            if rank == 0:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(line) + "\n")
        if val is not None and (step % cfg.val_every == 0 or step == cfg.steps) and rank == 0:
            res = heldout_nll(model, make_loader(val), device, max_batches=cfg.val_batches)
            res.pop("per_clip")
            last_val = {"step": step, "split": "val", **res}
            with metrics_path.open("a") as f:
                f.write(json.dumps(last_val) + "\n")
        interrupted = step < cfg.steps and _stop_agreed(stop, world, device)
        if step % cfg.ckpt_every == 0 or step == cfg.steps or interrupted:
            rngs = _gather(ckpt_io.rng_state(), world)
            if rank == 0:
                state = {
                    "model_configs": model.configs(),
                    "token_spec": spec.to_dict(),
                    "rng": rngs,
                    "schedule": {
                        "name": "warmup_cosine",
                        "lr": cfg.lr,
                        "warmup_steps": cfg.warmup_steps,
                        "schedule_steps": cfg.schedule_steps or cfg.steps,
                        "min_lr_ratio": cfg.min_lr_ratio,
                    },
                    "data": {
                        "batches_per_rank": data_batches,
                        "world_size": world,
                        "num_workers": cfg.num_workers,
                        "seed": cfg.seed,
                    },
                    "train_config": cfg.to_dict(),
                    "log_pending": {"sums": log_acc, "steps": acc_steps},
                }
                ckpt_io.save_checkpoint(run, step, model, opt, state, keep=cfg.keep_checkpoints)
            if world > 1:
                dist.barrier()
        if interrupted:
            break
    if bar is not None:
        bar.stop()

    all_seen = _gather(sorted(shards_seen), world)
    all_counts = _gather(merge_counts(counts_by_worker), world)
    summary = {
        "steps": step,
        "world_size": world,
        "shards_by_rank": all_seen,
        "data_by_rank": all_counts,
        "last_val": last_val,
        "params": model.semantic.num_params() + model.acoustic.num_params(),
        "device": device.type,  # as resolved from cfg.device / cfg.precision (config.json keeps what was asked)
        "precision": precision,
    }
    latest = ckpt_io.latest_checkpoint(run) if rank == 0 else None
    summary["checkpoint"] = str(latest) if latest is not None else None
    if step < cfg.steps:
        summary["interrupted"] = True
    elif rank == 0:
        write_json_atomic(str(run / "train_summary.json"), summary)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[MusicLM, TokenSpec, dict]:
    """The model of a run's latest checkpoint, its token spec and its state."""
    ckpt = ckpt_io.latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint (checkpoints/latest.json missing)")
    state = ckpt_io.read_state(ckpt)
    try:
        model = MusicLM.from_configs(state["model_configs"])
        spec = TokenSpec.from_dict(state["token_spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ckpt_io.CheckpointError(f"{ckpt / 'state.json'}: {type(exc).__name__}: {exc}") from exc
    ckpt_io.load_weights(ckpt, model)
    return model.to(device).eval(), spec, state


if __name__ == "__main__":  # torchrun entry: python -m cadenza.training.trainer CONFIG.json
    logging.basicConfig(level=logging.INFO)
    train(TrainConfig.from_dict(json.loads(Path(sys.argv[1]).read_text())))
