"""One token sample from a shard to a batch row: decode and check its members, and crop both token streams
to the same time window (`cadenza.training.batch` pads samples into a batch).

Every sample holds `semantic.npy` [T_s], `acoustic.npy` [K, T_a], `text.npy` [D] and `json`.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np

from cadenza.formats.token_spec import FingerprintMismatch, TokenSpec


class SampleError(ValueError):
    """One sample cannot be used (missing or unreadable member)."""


_NPY_HEADER = re.compile(r"'descr':\s*'([^']+)',\s*'fortran_order':\s*False,\s*'shape':\s*\(([\d,\s]*)\)")


def read_npy(data: bytes) -> np.ndarray:
    """A .npy payload as a read-only array over `data` (no copy); np.load for anything unusual."""
    if bytes(data[:6]) == b"\x93NUMPY" and data[6] == 1:
        hlen = int.from_bytes(data[8:10], "little")
        m = _NPY_HEADER.search(bytes(data[10 : 10 + hlen]).decode("latin1"))
        if m and m.group(1)[1:] in ("i2", "i4", "i8", "f2", "f4", "u2"):
            shape = tuple(int(x) for x in m.group(2).replace(" ", "").split(",") if x)
            return np.frombuffer(data, dtype=np.dtype(m.group(1)), offset=10 + hlen).reshape(shape)
    return np.load(io.BytesIO(data), allow_pickle=False)


def _npy(raw: dict[str, Any], member: str) -> np.ndarray:
    if member not in raw:
        raise SampleError(f"missing member {member}")
    try:
        return read_npy(raw[member])
    except Exception as exc:  # corrupt payloads come in many shapes
        raise SampleError(f"unreadable {member}: {exc}") from exc


def decode_sample(raw: dict[str, Any], spec: TokenSpec, *, check_fingerprints: bool = True) -> dict[str, Any]:
    """Raw tar sample -> arrays; SampleError when unusable, FingerprintMismatch when foreign."""
    key = raw.get("__key__", "?")
    if "json" not in raw:
        raise SampleError("missing member json")
    try:
        meta = json.loads(bytes(raw["json"]))
    except ValueError as exc:
        raise SampleError(f"unreadable json: {exc}") from exc
    if check_fingerprints:
        fps = meta.get("tokenizers") or {}
        for stage in ("semantic", "acoustic"):
            if fps.get(stage) != spec.fingerprints.get(stage):
                raise FingerprintMismatch(
                    f"{raw.get('__url__')}: sample {key}: {stage} fingerprint {fps.get(stage)} "
                    f"!= expected {spec.fingerprints.get(stage)}"
                )
    semantic = _npy(raw, "semantic.npy")
    acoustic = _npy(raw, "acoustic.npy")
    if semantic.ndim != 1 or acoustic.ndim != 2 or acoustic.shape[0] != spec.num_codebooks:
        raise SampleError(f"bad shapes semantic {semantic.shape} acoustic {acoustic.shape}")
    if semantic.size == 0 or acoustic.shape[1] == 0:
        raise SampleError("empty token streams")
    # codes index embedding tables: a float, negative or too large code would crash (or silently
    # misindex) a training step far from the shard that held it
    vocabs = {"semantic": spec.semantic_vocab, "acoustic": spec.acoustic_vocab}
    for name, codes in (("semantic", semantic), ("acoustic", acoustic)):
        vocab = vocabs[name]
        if codes.dtype.kind not in "iu":
            raise SampleError(f"{name} tokens have dtype {codes.dtype}, expected integers")
        # one pass: seen as unsigned, a negative code is huge, so max() alone finds both ends
        unsigned = codes.view(codes.dtype.str.replace("i", "u")) if codes.dtype.kind == "i" else codes
        if int(unsigned.max()) >= vocab:
            lo, hi = int(codes.min()), int(codes.max())
            raise SampleError(f"{name} tokens out of range [{lo}, {hi}] for vocabulary size {vocab}")
    text = _npy(raw, "text.npy") if "text.npy" in raw else None
    if text is not None and text.shape != (spec.text_dim,):
        raise SampleError(f"text embedding shape {text.shape} != ({spec.text_dim},)")
    if text is not None and text.dtype.kind != "f":
        raise SampleError(f"text embedding has dtype {text.dtype}, expected floats")
    return {
        "key": key,
        "ytid": str(meta.get("ytid", key[:11])),
        "url": raw.get("__url__", ""),
        "semantic": semantic,
        "acoustic": acoustic,
        "text": text,
    }

def crop_aligned(sample: dict[str, Any], spec: TokenSpec, seconds: float, rng: np.random.Generator | None):
    """Cut the same time window out of both token streams (rng None = from the start)."""
    ts, ta = len(sample["semantic"]), sample["acoustic"].shape[1]
    n_s, n_a = max(1, round(seconds * spec.semantic_rate)), max(1, round(seconds * spec.acoustic_rate))
    start_s = 0
    if rng is not None and ts > n_s:
        # start on a semantic frame; the acoustic start is the same instant at its own rate
        start_s = int(rng.integers(0, ts - n_s + 1))
    start_a = min(round(start_s / spec.semantic_rate * spec.acoustic_rate), max(0, ta - 1))
    out = dict(sample)
    out["semantic"] = sample["semantic"][start_s : start_s + n_s]
    out["acoustic"] = sample["acoustic"][:, start_a : start_a + n_a]
    return out
