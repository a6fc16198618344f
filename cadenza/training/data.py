"""Streaming loader over token shards (WebDataset tars written by `cadenza tokenize`).

The stream is built so that a run can be resumed *exactly*:

- epochs are numbered; in epoch e each reader visits its own shards in an order seeded by (seed, e)
  and runs its own seeded shuffle buffer, so the stream of one (rank, worker) is a pure function of the config;
- each sample's crop and its weight draw are seeded by (seed, epoch, key, repeat), independent of order;
- the data position is just "batches consumed"; resuming replays the stream and drops that many batches
  before collating anything.

Shards are split by node (DDP rank) and by DataLoader worker; with fewer shards than readers the split
falls back to sample level so no reader starves. Unreadable shards and corrupt samples are counted and
skipped. A sample whose tokenizer fingerprints differ from the expected ones stops the run.

What a sample holds and how it becomes a batch row is cadenza.formats.token_samples.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import numpy as np
import torch
import webdataset as wds
from webdataset.tariterators import group_by_keys

from cadenza.formats import tarscan
from cadenza.formats.shards import find_stats
from cadenza.formats.storage import filesystem, read_json
from cadenza.formats.token_samples import SampleError, crop_aligned, decode_sample
from cadenza.formats.token_spec import TokenSpec
from cadenza.training.batch import collate

log = logging.getLogger(__name__)


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


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


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
                fs, path = filesystem(url)
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
