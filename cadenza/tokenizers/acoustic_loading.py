"""Loading and saving the acoustic tokenizer: real weights (a save_pretrained dir or the Hugging Face cache,
offline), a seeded random codec, or the codec that made a token dir, checked against its manifest.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from cadenza.common.sources import SourceError
from cadenza.formats import storage
from cadenza.tokenizers.acoustic import CODEC_META, AcousticWeightsError, EncodecTokenizer, codec_spec, encodec_config
from cadenza.tokenizers.base import TokenizerMismatchError
from cadenza.tokenizers.encode_batch import EncodeVariant
from cadenza.tokenizers.encodec_variant_names import DEFAULT_OPTIMIZE
from cadenza.tokenizers.random_codec import build_random_codec


def _fetch_hint(name: str) -> str:
    hub_id = codec_spec(name).hub_id
    return (
        f"fetch it once with `huggingface-cli download {hub_id}` (or in Python: "
        f"`EncodecModel.from_pretrained('{hub_id}')`), or pass --codec-weights DIR (a save_pretrained "
        f"directory); --codec-random-init is for tests and demos only"
    )


def _load_pretrained(name: str, weights: str | Path | None):
    from transformers import EncodecModel

    spec = codec_spec(name)
    if weights is not None:
        path = Path(weights)
        if not (path / "config.json").is_file():
            raise AcousticWeightsError(f"--codec-weights {path}: no config.json there; {_fetch_hint(name)}")
        model = EncodecModel.from_pretrained(path, local_files_only=True)
    else:
        try:
            model = EncodecModel.from_pretrained(spec.hub_id, local_files_only=True)
        except OSError as exc:
            raise AcousticWeightsError(
                f"EnCodec weights {spec.hub_id} are not in the Hugging Face cache; {_fetch_hint(name)}"
            ) from exc
    expected = encodec_config(name)
    if model.config.sampling_rate != expected.sampling_rate or model.config.frame_rate != expected.frame_rate:
        raise AcousticWeightsError(
            f"weights {weights or spec.hub_id} are a {model.config.sampling_rate} Hz / {model.config.frame_rate} Hz "
            f"codec, not {name} ({expected.sampling_rate} Hz / {expected.frame_rate} Hz)"
        )
    return model


def load_acoustic(
    name: str = "encodec_24khz", *, weights: str | Path | None = None, random_init: bool = False,
    bandwidth: float | None = None, calibration: list[np.ndarray] | None = None, small: bool = False,
    seed: int = 0, optimize: str = DEFAULT_OPTIMIZE, device: str = "cpu", variant: EncodeVariant | None = None,
) -> EncodecTokenizer:
    """The named EnCodec tokenizer.

    weights: a save_pretrained directory; else the HF cache (offline). random_init: a seeded random codec
    whose codebooks are k-means-fitted on `calibration` clips (synthetic audio when none); `small` narrows
    its widths (tests). bandwidth defaults to 6.0 kbps (24 kHz, 8 codebooks) or 2.2 (32 kHz, 4 codebooks).
    device: "cpu" or "cuda" (resolved; see cadenza.common.devices). variant: batched / bf16 encode (default: the
    reference, one clip at a time in fp32).
    """
    codec_spec(name)
    if random_init and weights is not None:
        raise ValueError("pass either weights or random_init, not both")
    if random_init:
        model = build_random_codec(name, bandwidth=bandwidth, calibration=calibration, small=small, seed=seed)
        return EncodecTokenizer(name, model, bandwidth=bandwidth, random_weights=True, source="random-init",
                                optimize=optimize, device=device, variant=variant)
    model = _load_pretrained(name, weights)
    random_weights = False
    if weights is not None and (meta_path := Path(weights) / CODEC_META).is_file():
        meta = json.loads(meta_path.read_text())
        random_weights = bool(meta.get("random_weights", False))
        # a codec cadenza trained or built records the bandwidth its tokens use
        bandwidth = bandwidth if bandwidth is not None else meta.get("bandwidth")
    source = str(weights) if weights is not None else f"hf-cache:{codec_spec(name).hub_id}"
    return EncodecTokenizer(name, model, bandwidth=bandwidth, random_weights=random_weights, source=source,
                            optimize=optimize, device=device, variant=variant)


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def save_codec(tokenizer: EncodecTokenizer, directory: str) -> None:
    """Save to a local path or an fsspec URL (written locally first, then copied)."""
    fs, path = storage.filesystem(directory)
    if _is_local(fs):
        tokenizer.save(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        fs.put(tmp + "/", path, recursive=True)


def local_codec_dir(directory: str, stack: list[tempfile.TemporaryDirectory]) -> str:
    fs, path = storage.filesystem(directory)
    if _is_local(fs):
        return path
    tmp = tempfile.TemporaryDirectory()
    stack.append(tmp)
    fs.get(path + "/", tmp.name, recursive=True)
    return tmp.name


def _is_codec_dir(path: str) -> bool:
    return bool(path) and not path.startswith("hf-cache:") and (Path(path) / "config.json").is_file()


def load_acoustic_for_tokens(
    tokens_dir: str, *, weights: str | Path | None = None, random_init: bool = False, optimize: str | None = None,
) -> EncodecTokenizer:
    """The acoustic tokenizer that made TOKENS: its saved random codec, else `weights`, else the codec dir
    tokenize loaded (when it still exists), else the HF cache.

    optimize: the encoder variant; None: the one that made the tokens (its fingerprint is the manifest's).
    Raises TokenizerMismatchError if the loaded weights' fingerprint differs from the manifest's.
    """
    manifest_path = storage.join(tokens_dir, "manifest.json")
    if not storage.exists(manifest_path):
        raise SourceError(f"{tokens_dir}: no manifest.json (not a finished `cadenza tokenize` output)")
    manifest = storage.read_json(manifest_path)
    desc = (manifest.get("tokenizers") or {}).get("acoustic") or {}
    if not desc:
        raise SourceError(f"{manifest_path}: names no acoustic tokenizer")
    optimize = optimize or desc.get("variant") or DEFAULT_OPTIMIZE
    made_random = bool(desc.get("random_weights")) or bool(manifest.get("random_weights"))
    variant = EncodeVariant.from_describe(desc)  # part of the fingerprint the tokens were made with
    if random_init and not made_random:
        raise TokenizerMismatchError(f"{tokens_dir} was made with real codec weights, not a random-init codec")
    stack: list[tempfile.TemporaryDirectory] = []
    try:
        if made_random:
            if weights is not None:
                raise TokenizerMismatchError(
                    f"{tokens_dir} was made with a random-init codec (saved in its codec dir); do not pass weights"
                )
            codec_dir = storage.join(tokens_dir, manifest.get("codec_dir") or "codec")
            if not storage.exists(storage.join(codec_dir, "config.json")):
                raise SourceError(f"{tokens_dir}: random-init tokens but no saved codec at {codec_dir}")
            tok = load_acoustic(desc["name"], weights=local_codec_dir(codec_dir, stack),
                                bandwidth=desc.get("bandwidth"), optimize=optimize, variant=variant)
        else:
            if weights is None and _is_codec_dir(desc.get("source", "")):
                weights = desc["source"]  # the codec dir tokenize loaded (e.g. `cadenza codec train` output)
            tok = load_acoustic(desc["name"], weights=weights, bandwidth=desc.get("bandwidth"), optimize=optimize,
                                variant=variant)
    finally:
        for tmp in stack:
            tmp.cleanup()
    if tok.fingerprint() != desc.get("fingerprint"):
        raise TokenizerMismatchError(
            f"acoustic tokenizer mismatch for {tokens_dir}: manifest has {desc.get('name')} fingerprint "
            f"{desc.get('fingerprint')}, loaded weights ({tok.source}) give {tok.fingerprint()}"
        )
    return tok
