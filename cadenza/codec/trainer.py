"""`cadenza codec train`: EnCodec trained on your own audio shards, saved as a `save_pretrained` dir.

CODEC_DIR/
  config.json, model.safetensors   the EncodecModel (transformers' own format: `--codec-weights CODEC_DIR`)
  cadenza_codec.json               tokenizer name, bandwidth, fingerprint, random_weights: false
  codec.json                       the training record, written last (the completion marker): preset,
                                   steps, training shards' fingerprint, held-out reconstruction metrics
                                   and the same metrics for the random-init codec it started from
  train/checkpoints/, train/metrics.jsonl   resumable training state (the LM trainer's checkpoint code)

The codec starts as the random-init codec (seeded weights, k-means codebooks on training clips), so its
step-0 validation is the random-init baseline. Losses: multi-resolution log-mel L1 + multi-resolution
STFT distance + L1 on the waveform + the frame-locked loss (weight `frame_locked_weight`, recorded in
codec.json's loss_weights) + the RVQ commitment loss; codebooks follow EMA updates with dead-code
re-seeding (cadenza.codec.rvq). Batches are drawn by (seed, step), so resume is exact.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadenza.codec import losses
from cadenza.codec.data import ClipSet, load_clip_set, segment_batch, shards_fingerprint, split_paths
from cadenza.codec.presets import ACOUSTIC_NAME, encodec_config, preset
from cadenza.codec.rvq import RVQSettings, quantize_train
from cadenza.common.config import StageConfig
from cadenza.common.sources import SourceError
from cadenza.formats import defaults
from cadenza.formats.storage import write_json_atomic
from cadenza.training import checkpoint as ckpt_io
from cadenza.training.runlog import step_progress, torch_threads, truncate_metrics_log

log = logging.getLogger(__name__)

RECORD = "codec.json"
LOSS_WEIGHTS = {"mel": 1.0, "stft": 1.0, "l1": 1.0, "commitment": 1.0}  # frame_locked: the config's
FRAME_LOCKED_WEIGHT = 1.0  # see README: decodes stop sharing the frame-rate buzz, for ~10% more log-mel L1
WARMUP_STEPS = 20
INIT_BATCH = 2**31  # the (seed, step) of the batch the data-dependent init sees: never a training step


class CodecRunExists(SourceError):
    """CODEC_DIR already holds a run and --resume was not given."""


@dataclass
class CodecTrainConfig(StageConfig):
    shards: str  # ingest output dir (audio shards)
    out: str  # codec dir
    preset: str = defaults.CODEC_PRESET
    steps: int | None = None  # None: the preset's
    batch_size: int | None = None
    segment_seconds: float | None = None
    lr: float | None = None
    val_shards: str | None = None  # held-out audio dir; None: the last `holdout_shards` shards of `shards`
    holdout_shards: int = 1
    max_clips: int = 1000  # training clips held in memory (spread over all shards)
    max_val_clips: int = 16
    val_every: int = 100
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    resume: bool = False
    stop_at: int | None = None  # checkpoint and stop at this step (a time-boxed or preemptible job); resume later
    # one thread: on a shared 2-core machine two threads ran ~7x slower than one (1.4 vs 11 audio s/s under
    # load), against at most ~1.5x faster when idle; None: torch's default
    torch_threads: int | None = 1
    progress: bool = True
    # weight of losses.frame_locked_l1 (the frame-rate buzz every decode shares); 0 turns it off
    frame_locked_weight: float = FRAME_LOCKED_WEIGHT

    def settings(self) -> dict[str, Any]:
        """Steps, batch, segment and lr with the preset's values filled in."""
        p = preset(self.preset)
        steps = self.steps if self.steps is not None else p.steps
        out = {"steps": steps, "ae_warmup_steps": min(steps // 5, 200),
               "batch_size": self.batch_size or p.batch_size,
               "segment_seconds": self.segment_seconds or p.segment_seconds, "lr": self.lr or p.lr}
        if self.frame_locked_weight < 0:
            raise ValueError(f"frame-locked loss weight must be >= 0, got {self.frame_locked_weight}")
        if self.frame_locked_weight:  # only when on: runs without the term keep the settings they had
            out["frame_locked_weight"] = self.frame_locked_weight
        if out["steps"] < 1 or out["batch_size"] < 1 or out["segment_seconds"] <= 0 or out["lr"] <= 0:
            raise ValueError(f"steps, batch size, segment seconds and lr must be positive, got {out}")
        return out


def reconstruct(model, audio: np.ndarray, bandwidth: float) -> np.ndarray:
    """Encode then decode one mono clip through EncodecModel's own inference path."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).view(1, 1, -1)
    with torch.inference_mode():
        codes = model.encode(x, bandwidth=bandwidth).audio_codes
        return model.decode(codes, [None]).audio_values[0, 0, : len(audio)].numpy()


def validate(model, clips: ClipSet, bandwidth: float) -> dict[str, Any]:
    """Mean reconstruction metrics over held-out clips, and how alike two clips' decodes are."""
    was_training = model.training
    model.eval()
    per_clip, decodes = [], []
    for audio in clips.audio:
        recon = reconstruct(model, audio, bandwidth)
        per_clip.append(losses.reconstruction_metrics(audio, recon, clips.sample_rate))
        decodes.append(recon)
    model.train(was_training)
    out: dict[str, Any] = {k: float(np.mean([m[k] for m in per_clip])) for k in losses.METRIC_DIRECTION}
    out["clips"] = len(per_clip)
    if len(decodes) >= 2:  # a decoder that ignores its codes gives every clip the same waveform
        n = min(len(decodes[0]), len(decodes[1]))
        out["decode_correlation_first_two"] = float(np.corrcoef(decodes[0][:n], decodes[1][:n])[0, 1])
        pairs, source_pairs = pairwise_correlations(decodes), pairwise_correlations(clips.audio)
        out.update(decode_correlation_median=float(np.median(pairs)), decode_correlation_max=float(np.max(pairs)),
                   source_correlation_median=float(np.median(source_pairs)))
    hop = int(np.prod(model.config.upsampling_ratios))
    out["frame_locked_rms_ratio"] = float(np.mean([frame_locked_rms_ratio(d, hop) for d in decodes]))
    return out


def pairwise_correlations(signals: list[np.ndarray]) -> np.ndarray:
    """Waveform correlation of every pair of signals (each pair trimmed to the shorter)."""
    out = []
    for i in range(len(signals)):
        for j in range(i + 1, len(signals)):
            n = min(len(signals[i]), len(signals[j]))
            out.append(np.corrcoef(signals[i][:n], signals[j][:n])[0, 1])
    return np.array(out)


def frame_locked_rms_ratio(decode: np.ndarray, hop: int) -> float:
    """RMS of the decode's mean pattern per hop phase (its frame-locked part) over the decode's RMS."""
    folded = losses.fold_frames(torch.from_numpy(np.ascontiguousarray(decode, dtype=np.float32))[None], hop)
    return float(folded.pow(2).mean().sqrt()) / max(float(np.sqrt(np.mean(np.square(decode)))), 1e-9)


def loss_weights(settings: dict[str, Any]) -> dict[str, float]:
    return {**LOSS_WEIGHTS, "frame_locked": float(settings.get("frame_locked_weight", 0.0))}


def _lr(step: int, base: float, total: int) -> float:
    if step < WARMUP_STEPS:
        return base * (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def random_init_codec(cfg: CodecTrainConfig, clips: ClipSet):
    """The random-init codec (seeded transformers init, k-means codebooks on `clips`): the baseline a trained
    codec must beat, built exactly as `cadenza tokenize --codec-random-init` builds its codec."""
    from transformers import EncodecModel

    from cadenza.tokenizers.random_codec import init_codebooks_kmeans

    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        model = EncodecModel(encodec_config(cfg.preset))
    init_codebooks_kmeans(model, clips.audio[:16], num_codebooks=_num_quantizers(model, cfg), seed=cfg.seed)
    return model.eval()


def _num_quantizers(model, cfg: CodecTrainConfig) -> int:
    return int(model.quantizer.get_num_quantizers_for_bandwidth(preset(cfg.preset).bandwidth))


def _trainable_model(cfg: CodecTrainConfig):
    from transformers import EncodecModel

    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        model = EncodecModel(encodec_config(cfg.preset))
    # transformers' init draws biases that swamp a quiet input: the encoder then says nearly the same thing
    # for every clip (output correlation ~0.9999 between noise and a sine) and the decoder learns one fixed
    # waveform that ignores its codes. Zero biases keep the encoder's output a function of the audio
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or ".bias_" in name:
                param.zero_()
    return model.train()


def _init_codebooks(model, cfg: CodecTrainConfig, clips: ClipSet, frames_per_batch: int) -> None:
    """k-means codebooks on the warmed-up encoder's outputs; assignment counts rescaled to one batch, the
    scale the EMA and the dead-code rule work at."""
    from cadenza.tokenizers.random_codec import init_codebooks_kmeans

    init_codebooks_kmeans(model, clips.audio[:16], num_codebooks=_num_quantizers(model, cfg), seed=cfg.seed)
    with torch.no_grad():
        for layer in model.quantizer.layers:
            size = layer.codebook.cluster_size
            size.mul_(frames_per_batch / size.sum().clamp_min(1.0))
            layer.codebook.embed_avg.copy_(layer.codebook.embed * size[:, None])


def _check_out(cfg: CodecTrainConfig, out: Path) -> None:
    record = out / RECORD
    if not cfg.resume and (record.exists() or (out / "train" / "checkpoints").exists()):
        raise CodecRunExists(f"--out {out}: already holds a codec run; pass --resume to continue or reuse it, "
                             "or choose another --out")


def train_codec(config: CodecTrainConfig) -> dict[str, Any]:
    """Train (or resume, or reuse a finished run of the same settings); returns the training record."""
    with torch_threads(config.torch_threads):  # then the caller's setting again, e.g. the demo's next stages
        return _train(config)


def _train(config: CodecTrainConfig) -> dict[str, Any]:
    cfg = config
    settings = cfg.settings()
    p = preset(cfg.preset)
    out, run = Path(cfg.out), Path(cfg.out) / "train"
    _check_out(cfg, out)
    if (out / RECORD).exists():
        record = json.loads((out / RECORD).read_text())
        if record.get("settings") == settings and record.get("preset") == cfg.preset:
            return record
        raise CodecRunExists(f"--out {out}: holds a finished codec run with other settings "
                             f"({record.get('preset')}, {record.get('settings')}); choose another --out")
    train_paths, val_paths = split_paths(cfg.shards, cfg.val_shards, cfg.holdout_shards)
    sample_rate = encodec_config(cfg.preset).sampling_rate
    train = load_clip_set(train_paths, sample_rate, cfg.max_clips)
    if not train.audio:
        raise SourceError(f"--shards {cfg.shards}: no readable clips to train a codec on")
    val = load_clip_set(val_paths, sample_rate, cfg.max_val_clips) if val_paths else None
    fingerprint = shards_fingerprint(train_paths)

    model = _trainable_model(cfg)
    init_batch = segment_batch(train, 16, int(sample_rate), cfg.seed, INIT_BATCH)
    data_dependent_init(model, torch.from_numpy(init_batch)[:, None])
    num_q = _num_quantizers(model, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=settings["lr"], betas=(0.5, 0.9), weight_decay=0.0)
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(str(run / "config.json"), cfg.to_dict())
    start, baseline = 0, None
    ckpt = ckpt_io.latest_checkpoint(run) if cfg.resume else None
    if ckpt is not None:
        state = ckpt_io.read_state(ckpt)
        if state.get("settings") != settings or state.get("preset") != cfg.preset:
            raise CodecRunExists(f"{ckpt}: was trained with {state.get('preset')} {state.get('settings')}, "
                                 f"not {cfg.preset} {settings}; choose another --out")
        if state.get("shards_fingerprint") != fingerprint:
            raise CodecRunExists(f"{ckpt}: was trained on other audio shards than --shards {cfg.shards}")
        ckpt_io.load_weights(ckpt, model)
        ckpt_io.load_optimizer(ckpt, opt, state)
        start, baseline = int(state["step"]), state.get("baseline")
        pending = state.get("log_pending") or {}
        truncate_metrics_log(run / "metrics.jsonl", start)
        ckpt_io.set_rng_state(state["rng"])
    else:
        truncate_metrics_log(run / "metrics.jsonl", -1)
        pending = {}
        torch.manual_seed(cfg.seed)
        baseline = validate(random_init_codec(cfg, train), val, p.bandwidth) if val else None

    segment = int(settings["segment_seconds"] * sample_rate)
    hop = int(np.prod(encodec_config(cfg.preset).upsampling_ratios))
    rvq = RVQSettings()
    bar = step_progress("codec", settings["steps"], start, cfg.progress)
    # losses summed since the last metrics line; checkpointed, so a resumed run logs the same averages
    acc, acc_n = dict(pending.get("sums", {})), int(pending.get("steps", 0))
    metrics_path, last_val, seen_s, t0 = run / "metrics.jsonl", None, 0.0, time.perf_counter()
    end = min(settings["steps"], cfg.stop_at) if cfg.stop_at else settings["steps"]
    for step in range(start, end):
        for g in opt.param_groups:
            g["lr"] = _lr(step, settings["lr"], settings["steps"])
        x = torch.from_numpy(segment_batch(train, settings["batch_size"], segment, cfg.seed, step))
        emb = model.encoder(x[:, None])
        if step == settings["ae_warmup_steps"]:
            _init_codebooks(model, cfg, train, emb.shape[0] * emb.shape[2])
        if step < settings["ae_warmup_steps"]:  # continuous autoencoder first: codebooks fitted to a useful encoder
            q, commitment, reseeded = emb, emb.new_zeros(()), 0
        else:
            q, commitment, _codes, reseeded = quantize_train(model.quantizer, emb, num_q, rvq, update=True)
        y = model.decoder(q)[:, 0, :segment]
        parts = {"mel": losses.multires_mel_l1(x, y, sample_rate).mean(), "stft": losses.stft_distance(x, y).mean(),
                 "l1": (x - y).abs().mean(), "commitment": commitment,
                 "frame_locked": losses.frame_locked_l1(x, y, hop).mean()}
        weights = loss_weights(settings)
        loss = sum(weights[k] * v for k, v in parts.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step + 1
        seen_s += x.numel() / sample_rate
        for k, v in {"loss": loss, **parts}.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["reseeded"] = acc.get("reseeded", 0.0) + reseeded
        acc_n += 1
        if bar is not None:
            bar.update(bar.task_ids[0], completed=done, loss=float(loss.detach()))
        if done % cfg.log_every == 0 or done == settings["steps"]:
            line = {"step": done, "split": "train", **{k: v / acc_n for k, v in acc.items()},
                    "audio_s_per_s": seen_s / max(time.perf_counter() - t0, 1e-9)}
            with metrics_path.open("a") as f:
                f.write(json.dumps(line) + "\n")
            acc, acc_n, seen_s, t0 = {}, 0, 0.0, time.perf_counter()
        if val is not None and (done % cfg.val_every == 0 or done == settings["steps"]):
            last_val = {"step": done, "split": "val", **validate(model, val, p.bandwidth)}
            with metrics_path.open("a") as f:
                f.write(json.dumps(last_val) + "\n")
        if done % cfg.ckpt_every == 0 or done in (settings["steps"], end):
            state = {"preset": cfg.preset, "settings": settings, "shards_fingerprint": fingerprint,
                     "baseline": baseline, "rng": ckpt_io.rng_state(), "config": cfg.to_dict(),
                     "log_pending": {"sums": acc, "steps": acc_n}}
            ckpt_io.save_checkpoint(run, done, model, opt, state, keep=2)
    if bar is not None:
        bar.stop()
    if end < settings["steps"]:
        return {"stopped_at": end, "steps": settings["steps"], "dir": cfg.out, "finished": False}
    if last_val is None and val is not None:  # resumed at the last step: measure the finished codec
        last_val = {"step": settings["steps"], "split": "val", **validate(model, val, p.bandwidth)}
    return _finish(cfg, model.eval(), settings, fingerprint, train_paths, val_paths, train, val, baseline, last_val)


def _finish(cfg: CodecTrainConfig, model, settings: dict[str, Any], fingerprint: str, train_paths: list[str],
            val_paths: list[str], train: ClipSet, val: ClipSet | None, baseline: dict | None,
            heldout: dict | None) -> dict[str, Any]:
    from cadenza.tokenizers.acoustic import EncodecTokenizer

    p = preset(cfg.preset)
    tokenizer = EncodecTokenizer(ACOUSTIC_NAME, model, bandwidth=p.bandwidth, random_weights=False,
                                 source=str(cfg.out), optimize="eager")
    tokenizer.save(cfg.out)
    record = {
        "preset": cfg.preset, "settings": settings, "random_weights": False, "acoustic": ACOUSTIC_NAME,
        "bandwidth": p.bandwidth, "num_codebooks": tokenizer.num_codebooks, "vocab_size": tokenizer.vocab_size,
        "sample_rate": tokenizer.sample_rate, "frame_rate": tokenizer.frame_rate,
        "fingerprint": tokenizer.fingerprint(), "steps": settings["steps"],
        "params": sum(t.numel() for t in model.parameters()),
        "training_shards": {"dir": cfg.shards, "shards": len(train_paths), "fingerprint": fingerprint,
                            "clips": len(train.audio), "seconds": round(train.seconds, 2)},
        "validation_shards": {"dir": cfg.val_shards or cfg.shards, "shards": len(val_paths),
                              "clips": len(val.audio) if val else 0},
        "loss_weights": loss_weights(settings), "heldout": heldout, "random_init_baseline": baseline,
        "metrics": "log-mel L1 (64 bands), multi-resolution STFT distance, SI-SNR dB: cadenza.codec.losses",
    }
    write_json_atomic(str(Path(cfg.out) / RECORD), record)
    return record


@torch.no_grad()
def data_dependent_init(model, audio: torch.Tensor) -> None:
    """Weight-norm's data-dependent init (Salimans & Kingma 2016): on one batch, scale each conv's gain so its
    output has unit variance, the decoder's last conv so it matches the input's. At transformers' init the
    encoder shrinks the audio ~100x, and the decoder then learns one fixed waveform before it learns to
    listen to its input; normalised layers start where both paths carry signal."""
    convs = [m.conv for m in model.modules() if hasattr(m, "conv") and hasattr(m.conv, "parametrizations")]
    last = model.decoder.layers[-1].conv
    target = {id(c): (float(audio.std()) if c is last else 1.0) for c in convs}

    def rescale(module, _inputs, output):
        scale = target[id(module)] / float(output.std()).__add__(1e-8)
        module.parametrizations.weight.original0.mul_(scale)
        return output * scale

    hooks = [c.register_forward_hook(rescale) for c in convs]
    try:
        model.decoder(model.encoder(audio))
    finally:
        for h in hooks:
            h.remove()
