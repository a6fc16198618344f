"""Generation: text -> semantic tokens -> acoustic tokens (delay pattern) -> audio.

Both stages decode autoregressively with a KV cache (or, for checking and benchmarking, by re-running
the whole sequence each step: `use_cache=False` gives exactly the same tokens for the same seed, since
every draw takes one uniform number from the same seeded generator). Classifier-free guidance mixes
the conditional and the unconditional ("null caption") logits: u + scale * (c - u).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from cadenza.common.config import StageConfig
from cadenza.formats import defaults
from cadenza.formats.token_spec import FingerprintMismatch, TokenSpec
from cadenza.training.audio_out import write_spectrogram, write_wav
from cadenza.training.delay import undelay
from cadenza.training.model import KVCache, MusicLM, StageLM

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    def encode(self, texts: list[str]) -> list[np.ndarray]: ...


class Decoder(Protocol):
    sample_rate: int

    def decode(self, codes: np.ndarray) -> np.ndarray: ...


@dataclass
class SampleConfig(StageConfig):
    seconds: float = defaults.SAMPLE_SECONDS
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    cfg_scale: float = 3.0  # 1 = no guidance
    seed: int = 0
    use_cache: bool = True


def pick_tokens(logits: torch.Tensor, cfg: SampleConfig, gen: torch.Generator) -> torch.Tensor:
    """logits [N, V] -> [N]; always draws N uniforms so cached/uncached runs stay in step."""
    u = torch.rand(logits.shape[0], generator=gen, device=logits.device)
    if cfg.temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k > 0:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if cfg.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True, dim=-1)
        drop = sorted_p.cumsum(-1) - sorted_p > cfg.top_p  # keep the smallest head reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    cdf = probs.cumsum(-1)
    return torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).squeeze(-1).clamp(max=probs.shape[-1] - 1)


@torch.no_grad()
def generate_stage(
    stage: StageLM,
    text: torch.Tensor,
    steps: int,
    cfg: SampleConfig,
    gen: torch.Generator,
    prefix: torch.Tensor | None = None,
    frames: int | None = None,
) -> torch.Tensor:
    """Generate `steps` decoder steps -> [B, K, steps] (delayed layout when K > 1; `frames` = real frames)."""
    mc = stage.cfg
    b, k = text.shape[0], mc.num_streams
    guided = cfg.cfg_scale != 1.0
    if guided:  # conditional rows first, then the same prompts with the null caption
        text = torch.cat([text, text])
        prefix = torch.cat([prefix, prefix]) if prefix is not None else None
        use_text = torch.arange(2 * b, device=text.device) < b
    else:
        use_text = torch.ones(b, dtype=torch.bool, device=text.device)
    rows = text.shape[0]
    head = stage.embed_prefix(text, use_text, prefix)
    bos = torch.full((rows, k, 1), mc.bos, dtype=torch.long, device=text.device)
    out = torch.empty(b, k, steps, dtype=torch.long, device=text.device)
    cache = KVCache(mc.n_layers) if cfg.use_cache else None
    t_idx = torch.arange(k, device=text.device)
    for t in range(steps):
        if cache is None:
            inputs = torch.cat([bos, out[:, :, :t].repeat(2 if guided else 1, 1, 1)], dim=2)
            logits = stage.run(torch.cat([head, stage.embed_tokens(inputs, 0, prefix)], dim=1))[:, :, -1]
        elif t == 0:
            logits = stage.run(torch.cat([head, stage.embed_tokens(bos, 0, prefix)], dim=1), cache=cache)[:, :, -1]
        else:
            prev = out[:, :, t - 1 : t].repeat(2 if guided else 1, 1, 1)
            logits = stage.run(stage.embed_tokens(prev, t, prefix), cache=cache)[:, :, -1]
        logits = logits.float()  # [rows, K, V]
        if guided:
            logits = logits[b:] + cfg.cfg_scale * (logits[:b] - logits[b:])
        tok = pick_tokens(logits.reshape(b * k, -1), cfg, gen).view(b, k)
        if k > 1:  # delay pattern: codebook i has no code before step i or after its last frame
            n = frames if frames is not None else steps - k + 1
            tok = torch.where((t < t_idx) | (t - t_idx >= n), torch.full_like(tok, mc.special), tok)
        out[:, :, t] = tok
    return out


@torch.no_grad()
def generate(
    model: MusicLM, text: torch.Tensor, spec: TokenSpec, cfg: SampleConfig, seconds: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Caption embeddings [B, D] -> (semantic [B, T_s], acoustic [B, K, T_a])."""
    seconds = cfg.seconds if seconds is None else seconds
    gen = torch.Generator(device=text.device).manual_seed(cfg.seed)
    n_s = max(1, round(seconds * spec.semantic_rate))
    n_a = max(1, round(seconds * spec.acoustic_rate))
    semantic = generate_stage(model.semantic, text, n_s, cfg, gen)[:, 0]
    k = spec.num_codebooks
    delayed = generate_stage(model.acoustic, text, n_a + k - 1, cfg, gen, prefix=semantic, frames=n_a)
    return semantic, undelay(delayed)


def run_random_weights(run_dir: Path) -> bool:
    """Whether the run's tokens came from a random-weight codec (tests and the demo): every output says so."""
    manifest = json.loads((Path(run_dir) / "tokens_manifest.json").read_text())
    return bool(manifest.get("random_weights"))


def default_text_encoder(run_dir: Path) -> TextEncoder:
    from cadenza.training.synthetic import SyntheticText

    manifest = json.loads((run_dir / "tokens_manifest.json").read_text())
    text = (manifest.get("tokenizers") or {}).get("text") or {}
    if not text:
        raise ValueError(f"{run_dir}: the run was trained without caption embeddings (tokenize --text none)")
    if text.get("name") == "synthetic":
        return SyntheticText()
    from cadenza.tokenizers.text import load_text

    return load_text(text.get("name", "minilm"))


def default_decoder(run_dir: Path, codec_weights: str | None, codec_random_init: bool) -> Decoder:
    from cadenza.training.synthetic import ToneDecoder

    manifest = json.loads((run_dir / "tokens_manifest.json").read_text())
    if manifest["tokenizers"]["acoustic"].get("name") == "synthetic":
        return ToneDecoder()
    from cadenza.tokenizers.acoustic_loading import load_acoustic_for_tokens

    tokens_dir = json.loads((run_dir / "config.json").read_text())["shards"]
    return load_acoustic_for_tokens(tokens_dir, weights=codec_weights, random_init=codec_random_init)


def embed_prompts(encoder: TextEncoder, prompts: list[str], spec: TokenSpec) -> torch.Tensor:
    fp = getattr(encoder, "fingerprint", None)
    if callable(fp) and spec.fingerprints.get("text") and fp() != spec.fingerprints["text"]:
        raise FingerprintMismatch(f"text encoder fingerprint {fp()} != the run's {spec.fingerprints['text']}")
    emb = np.stack([np.asarray(e, dtype=np.float32) for e in encoder.encode(prompts)])
    if emb.shape[1] != spec.text_dim:
        raise ValueError(f"text encoder gives {emb.shape[1]}-dim embeddings; the model takes {spec.text_dim}")
    return torch.from_numpy(emb)


def write_outputs(out_dir: Path, name: str, audio: np.ndarray, sr: int, meta: dict[str, Any]) -> dict[str, Any]:
    wav, png = out_dir / f"{name}.wav", out_dir / f"{name}.png"
    write_wav(wav, audio, sr)
    write_spectrogram(png, audio, sr, title=str(meta.get("prompt", name))[:80])
    return {**meta, "wav": wav.name, "png": png.name, "seconds": len(audio) / sr}


def sample(
    run_dir: str | Path,
    prompts: list[str],
    out_dir: str | Path,
    config: SampleConfig | None = None,
    *,
    text_encoder: TextEncoder | None = None,
    decoder: Decoder | None = None,
    codec_weights: str | None = None,
    codec_random_init: bool = False,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Generate one clip per prompt: WAV + spectrogram PNG + tokens (.npz) in out_dir, index in samples.json."""
    from cadenza.training.trainer import load_trained

    cfg = config or SampleConfig()
    run, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, spec, state = load_trained(run, device)
    encoder = text_encoder or default_text_encoder(run)
    dec = decoder or default_decoder(run, codec_weights, codec_random_init)
    text = embed_prompts(encoder, prompts, spec).to(device)
    semantic, acoustic = generate(model, text, spec, cfg)
    results = []
    random_weights = run_random_weights(run)
    for i, prompt in enumerate(prompts):
        name = f"sample-{i:03d}"
        codes = acoustic[i].cpu().numpy().astype(np.int16)
        np.savez(out / f"{name}.tokens.npz", semantic=semantic[i].cpu().numpy().astype(np.int16), acoustic=codes)
        audio = np.asarray(dec.decode(codes), dtype=np.float32)
        meta = {"prompt": prompt, "index": i, "step": state["step"], "tokens": f"{name}.tokens.npz",
                "random_weights": random_weights, **cfg.to_dict()}
        results.append(write_outputs(out, name, audio, int(dec.sample_rate), meta))
    (out / "samples.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
