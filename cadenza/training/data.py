"""Streaming loader over token shards (WebDataset tars written by `cadenza tokenize`).

Every sample holds `semantic.npy` [T_s], `acoustic.npy` [K, T_a], `text.npy` [D] and `json`. The stream is
built so that a run can be resumed *exactly*:

- epochs are numbered; in epoch e each reader visits its own shards in an order seeded by (seed, e)
  and runs its own seeded shuffle buffer, so the stream of one (rank, worker) is a pure function of the config;
- each sample's crop and its weight draw are seeded by (seed, epoch, key, repeat), independent of order;
- the data position is just "batches consumed"; resuming replays the stream and drops that many batches
  before collating anything.

Shards are split by node (DDP rank) and by DataLoader worker; with fewer shards than readers the split
falls back to sample level so no reader starves. Unreadable shards and corrupt samples are counted and
skipped. A sample whose tokenizer fingerprints differ from the expected ones stops the run.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import numpy as np
import torch
import webdataset as wds
from webdataset.tariterators import group_by_keys

from cadenza.shards import find_stats, list_shards, read_json
from cadenza.training import tarscan

log = logging.getLogger(__name__)

STAGES = ("semantic", "acoustic", "text")


class FingerprintMismatch(ValueError):
    """Shards, manifest or checkpoint were made by different tokenizers."""


class SampleError(ValueError):
    """One sample cannot be used (missing or unreadable member)."""


@dataclass
class TokenSpec:
    """What the token shards contain, read from TOKENS/manifest.json."""

    semantic_vocab: int
    semantic_rate: float
    acoustic_vocab: int
    acoustic_rate: float
    num_codebooks: int
    text_dim: int
    fingerprints: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenSpec:
        fields = set(cls.__dataclass_fields__)
        if set(d) != fields:
            raise ValueError(f"token spec fields: unknown {sorted(set(d) - fields)}, missing {sorted(fields - set(d))}")
        return cls(**d)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str = "manifest") -> TokenSpec:
        if manifest.get("kind") != "tokens":
            raise ValueError(f"{where}: not a token manifest (kind={manifest.get('kind')!r})")
        tok = manifest.get("tokenizers") or {}
        try:
            sem, ac = tok["semantic"], tok["acoustic"]
        except KeyError as exc:
            raise ValueError(f"{where}: tokenizers.{exc.args[0]} missing") from exc
        text = tok.get("text") or {}
        return cls(
            semantic_vocab=int(sem["vocab_size"]),
            semantic_rate=float(sem["frame_rate"]),
            acoustic_vocab=int(ac["vocab_size"]),
            acoustic_rate=float(ac["frame_rate"]),
            num_codebooks=int(ac["num_codebooks"]),
            text_dim=int(text.get("dim") or text.get("embedding_dim") or 384),
            fingerprints={s: (tok.get(s) or {}).get("fingerprint") for s in STAGES},
        )

    def check_same(self, other: TokenSpec, what: str) -> None:
        """Refuse data made by other tokenizers than the ones `self` was made with."""
        for stage in STAGES:
            a, b = self.fingerprints.get(stage), other.fingerprints.get(stage)
            if a != b:
                raise FingerprintMismatch(f"{what}: {stage} tokenizer fingerprint {b} != expected {a}")


def load_token_dir(tokens_dir: str) -> tuple[dict[str, Any], list[str]]:
    """(manifest, completed shard paths) of a tokenize output dir."""
    manifest = read_json(f"{tokens_dir.rstrip('/')}/manifest.json")
    shards = list_shards(f"{tokens_dir.rstrip('/')}/shards")
    if not shards:
        raise ValueError(f"{tokens_dir}: no completed token shards in shards/")
    return manifest, shards


def load_weights(path: str | None) -> dict[str, float]:
    """The audit weights file: JSON {"weights": {ytid: w}} or a parquet with ytid/weight columns."""
    if not path:
        return {}
    if path.endswith(".parquet"):
        import pandas as pd

        df = pd.read_parquet(path)
        return {str(y): float(w) for y, w in zip(df["ytid"], df["weight"], strict=True)}
    weights = read_json(path).get("weights")
    if not isinstance(weights, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'weights' mapping ytid -> weight")
    return {str(k): float(v) for k, v in weights.items()}


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


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


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


def _pad_stack(arrays: list[np.ndarray], length: int) -> np.ndarray:
    """Stack along a new first axis, zero-padding the last axis to `length` (no padding: one np.stack)."""
    if all(a.shape[-1] == length for a in arrays):
        return np.stack(arrays)
    out = np.zeros((len(arrays), *arrays[0].shape[:-1], length), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, ..., : a.shape[-1]] = a
    return out


def collate(samples: list[dict[str, Any]], spec: TokenSpec) -> dict[str, Any]:
    """Pad variable lengths; masks are True on real frames. Tokens stay int16 as in the shards (a quarter
    of the bytes to move to the device); `nll.batch_to` widens them there."""
    sem_len = torch.tensor([len(s["semantic"]) for s in samples])
    ac_len = torch.tensor([s["acoustic"].shape[1] for s in samples])
    ls, la = int(sem_len.max()), int(ac_len.max())
    texts = [s["text"] if s["text"] is not None else np.zeros(spec.text_dim, np.float16) for s in samples]
    return {
        "semantic": torch.from_numpy(_pad_stack([s["semantic"] for s in samples], ls)),
        "semantic_mask": torch.arange(ls)[None, :] < sem_len[:, None],
        "acoustic": torch.from_numpy(_pad_stack([s["acoustic"] for s in samples], la)),
        "acoustic_mask": torch.arange(la)[None, :] < ac_len[:, None],
        "text": torch.from_numpy(np.stack(texts).astype(np.float32)),
        "has_text": torch.tensor([s["text"] is not None for s in samples]),
        "keys": [s["key"] for s in samples],
        "ytids": [s["ytid"] for s in samples],
        "urls": [s["url"] for s in samples],
    }


@dataclass
class LoaderConfig:
    batch_size: int = 8
    crop_seconds: float = 5.0
    shuffle_buffer: int = 256
    seed: int = 0
    num_workers: int = 0
    train: bool = True  # False: one pass, no shuffle, crops from the start, last partial batch kept

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StreamCounts:
    samples: int = 0
    corrupt_samples: int = 0
    unreadable_shards: int = 0  # a read error stopped the shard early
    truncated_shards: int = 0  # shorter than its .stats.json says (tar readers stop silently at such an end)
    errors: list[str] = field(default_factory=list)  # first few messages, for the log

    def note(self, kind: str, msg: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.errors) < 20:
            self.errors.append(msg)
        log.warning("skipping %s: %s", kind.replace("_", " ")[:-1], msg)


class TokenStream(torch.utils.data.IterableDataset):
    """Infinite (train) or single-pass (eval) stream of collated batches for one DDP rank."""

    def __init__(
        self,
        shards: list[str],
        spec: TokenSpec,
        config: LoaderConfig,
        *,
        weights: dict[str, float] | None = None,
        rank: int = 0,
        world_size: int = 1,
        skip_batches: int = 0,
        check_fingerprints: bool = True,
    ):
        super().__init__()
        self.shards, self.spec, self.cfg = list(shards), spec, config
        self.weights = weights or {}
        self.rank, self.world_size, self.skip_batches = rank, world_size, skip_batches
        self.check_fingerprints = check_fingerprints
        self.counts = StreamCounts()  # of the in-process stream (num_workers=0); workers send theirs in batches

    def _members(self, urls: list[str]) -> Iterator[dict[str, Any]]:
        """Tar members of each shard as {"fname", "data", "__url__"}, an empty dict after each shard."""
        for url in urls:
            self._current_url, self._current_failed = url, False
            try:
                fs, path = fsspec.core.url_to_fs(url)
                self._check_size(fs, path, url)
                data = fs.cat_file(path)
            except OSError as exc:
                self.counts.note("unreadable_shards", f"{url}: {exc}")
                continue
            try:
                entries, error = tarscan.scan(data)
            except tarscan.Unsupported:  # PAX / GNU headers: the standard reader handles them
                entries, error = tarscan.scan_with_tarfile(data)
            view = memoryview(data)
            names: set[str] = set()
            keys: set[str] = set()
            last_key = None
            for name, start, end in entries:
                key = name.rsplit("/", 1)[-1].partition(".")[0]
                if name.startswith("/") or ".." in name.split("/"):
                    error = ValueError(f"refusing tar member {name!r} (not a plain relative path)")
                    break
                if name in names or (key != last_key and key in keys):
                    # a second copy of a sample: the first one stands, the rest of the shard is refused
                    error = ValueError(f"refusing tar member {name!r} (duplicate sample key {key!r})")
                    break
                names.add(name)
                keys.add(key)
                last_key = key
                yield {"fname": name, "data": view[start:end], "__url__": url}
            yield {}
            if error is not None:
                self._on_tar_error(error)

    def _check_size(self, fs: fsspec.AbstractFileSystem, path: str, url: str) -> None:
        try:
            stats = find_stats(url)
            expected = read_json(stats).get("bytes") if stats else None
        except (OSError, ValueError):
            return  # no stats: nothing to compare with
        size = fs.size(path)
        if expected is not None and size != expected:
            # read what is there, but say the rest is missing
            self.counts.note("truncated_shards", f"{url}: {size} bytes, its stats say {expected}")

    def _on_tar_error(self, exc: Exception) -> bool:
        # one broken shard can raise twice (inside a member read, then in the tar iterator): count it once
        if getattr(self, "_current_failed", False):
            return True
        self._current_failed = True
        msg = f"{getattr(self, '_current_url', '?')}: {type(exc).__name__}: {exc.args[0] if exc.args else ''}"
        self.counts.note("unreadable_shards", msg)
        return True  # go on with the next shard

    def _epoch_samples(self, epoch: int, reader: int, readers: int) -> Iterator[dict[str, Any]]:
        # each reader owns a fixed share of the shards (disjoint across ranks and workers, every epoch)
        # and visits it in a new order each epoch
        by_shard = len(self.shards) >= readers
        mine = list(self.shards[reader::readers] if by_shard else self.shards)
        if self.cfg.train:
            random.Random(_seed(self.cfg.seed, "shards", epoch, reader)).shuffle(mine)
        raw = group_by_keys(self._members(mine), handler=self._on_tar_error)
        for i, sample in enumerate(raw):
            if not by_shard and i % readers != reader:
                continue
            try:
                decoded = decode_sample(sample, self.spec, check_fingerprints=self.check_fingerprints)
            except SampleError as exc:
                self.counts.note("corrupt_samples", f"{sample.get('__url__')}: {sample.get('__key__')}: {exc}")
                continue
            if not self.cfg.train:
                yield decoded
                continue
            w = self.weights.get(decoded["ytid"], 1.0)
            # a weight w means w copies on average: floor(w) for sure plus one more with chance frac(w)
            u = random.Random(_seed(self.cfg.seed, "weight", epoch, decoded["key"])).random()
            for r in range(int(w) + (u < w - int(w))):
                yield {**decoded, "epoch": epoch, "repeat": r}

    def _samples(self, reader: int, readers: int) -> Iterator[dict[str, Any]]:
        if not self.cfg.train:
            yield from self._epoch_samples(0, reader, readers)
            return
        for epoch in itertools.count():
            rng = random.Random(_seed(self.cfg.seed, "buffer", epoch, reader, readers))
            shuffle = wds.shuffle(self.cfg.shuffle_buffer, self.cfg.shuffle_buffer, rng=rng)
            stream = shuffle(self._epoch_samples(epoch, reader, readers))
            n = 0
            for n, sample in enumerate(stream, 1):  # noqa: B007
                yield sample
            if n == 0:
                raise RuntimeError(
                    f"reader {reader}/{readers}: an epoch over {len(self.shards)} shards gave no samples"
                )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        # DataLoader takes batches round-robin from its workers starting at worker 0, so the stream
        # that made batch number `skip_batches` must be played by worker 0 after a resume
        role = (worker + self.skip_batches) % workers
        reader, readers = self.rank * workers + role, self.world_size * workers
        skip = len(range(role, self.skip_batches, workers)) * self.cfg.batch_size
        bs, buf = self.cfg.batch_size, []
        for i, sample in enumerate(self._samples(reader, readers)):
            if i < skip:
                continue
            if self.cfg.train:
                rng = np.random.default_rng(
                    _seed(self.cfg.seed, "crop", sample["epoch"], sample["key"], sample["repeat"])
                )
                sample = crop_aligned(sample, self.spec, self.cfg.crop_seconds, rng)
            else:
                sample = crop_aligned(sample, self.spec, self.cfg.crop_seconds, None)
            buf.append(sample)
            self.counts.samples += 1
            if len(buf) == bs:
                yield self._batch(buf, worker)
                buf = []
        if buf:
            yield self._batch(buf, worker)

    def _batch(self, samples: list[dict[str, Any]], worker: int) -> dict[str, Any]:
        batch = collate(samples, self.spec)
        batch["counts"] = {worker: asdict(self.counts)}
        return batch


def make_loader(stream: TokenStream) -> torch.utils.data.DataLoader:
    """Batches are made inside the stream (so resume can skip them); the DataLoader only adds workers."""
    return torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=stream.cfg.num_workers,
        persistent_workers=False,
        prefetch_factor=4 if stream.cfg.num_workers else None,
        generator=torch.Generator(),  # the stream seeds itself; keep the global RNG untouched
    )


def merge_counts(per_worker: dict[int, dict[str, Any]]) -> dict[str, int]:
    keys = ("samples", "corrupt_samples", "unreadable_shards", "truncated_shards")
    return {k: sum(int(c[k]) for c in per_worker.values()) for k in keys}
