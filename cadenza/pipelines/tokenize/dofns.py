"""Beam transforms of the tokenize pipeline: read audio shards, tokenize chunks of clips, write token shards.

Workers load the tokenizers from the files the launcher fixed (k-means `.npz`, codec dir or HF cache,
MiniLM package) and refuse to run if a fingerprint differs from what the launcher recorded.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from typing import Any

import apache_beam as beam
import numpy as np

from cadenza.formats import shards, storage
from cadenza.formats.failures import FailureRecord, write_failures
from cadenza.tokenizers.base import TokenizerMismatchError

COUNT = "count"
CLIPS = "clips"

# Tokenizers loaded in this process, so an in-process runner's workers reuse what the launcher loaded
# (models are only read during inference). Keys name everything that decides the weights.
_LOADED: dict[tuple, Any] = {}


def cached(key: tuple, load):
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def semantic_key(plan: dict[str, Any]) -> tuple:
    return ("semantic", plan["kmeans_path"], plan["semantic"]["fingerprint"])


def acoustic_key(plan: dict[str, Any]) -> tuple:
    desc = plan["acoustic"]
    return ("acoustic", desc["name"], str(plan["codec_weights"]), desc["bandwidth"], plan["optimize"],
            plan["device"], desc["fingerprint"])


def text_key(plan: dict[str, Any]) -> tuple:
    return ("text", plan["text"]["name"], plan["text"]["fingerprint"])


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _meta(sample: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(sample["json"]) if "json" in sample else {}
    except (ValueError, UnicodeDecodeError):
        return {}


def failure(key: str, category: str, message: str, meta: dict[str, Any], shard: str) -> dict[str, Any]:
    message = re.sub(r" at 0x[0-9a-fA-F]+", "", message)  # object addresses would make reruns differ
    ytid = str(meta.get("ytid") or key.rsplit("_", 2)[0])
    return FailureRecord(key=key, stage="tokenize", category=category, message=message, attempts=1,
                         ytid=ytid, row=int(meta.get("row", 0) or 0), shard=shard).to_dict()


class ReadAudioShard(beam.DoFn):
    """(index, tar path) -> (index, (CLIPS, [sample, ...])) per chunk of at most `chunk_size` clips, then
    (index, (COUNT, n)) so the writer can check that every clip came back.

    The count and the chunks travel in the one main output, and chunks are cut here in process(), not by
    BatchElements: the pipeline then needs no tagged outputs and nothing emitted from finish_bundle, two
    things Beam's DaskRunner (2.77) does not deliver (see tokenize.py)."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = max(1, chunk_size)

    def process(self, item: tuple[int, str]):
        index, path = item
        count = 0
        chunk: list[dict[str, Any]] = []
        try:
            for sample in shards.iter_tar_samples(path):
                count += 1
                sample.pop("__url__", None)
                chunk.append(sample)
                if len(chunk) == self.chunk_size:
                    yield index, (CLIPS, chunk)
                    chunk = []
        except Exception as exc:  # noqa: BLE001 (a broken tar is recorded, not fatal to the other shards)
            count += 1
            name = path.rsplit("/", 1)[-1]
            chunk.append({"__key__": f"__shard__{name}", "__error__": f"unreadable shard {path}: {exc}"})
        if chunk:
            yield index, (CLIPS, chunk)
        yield index, (COUNT, count)


class TokenizeBundle(beam.DoFn):
    """(index, (CLIPS, samples)) -> (index, ("ok", token sample) | ("fail", failure dict)) per clip; the
    shard's (index, (COUNT, n)) passes through unchanged."""

    def __init__(self, plan: dict[str, Any], prefix: str) -> None:
        self.plan = plan
        self.prefix = prefix

    def setup(self) -> None:
        import torch

        from cadenza.common.devices import resolve_device
        from cadenza.tokenizers.acoustic_loading import load_acoustic
        from cadenza.tokenizers.encode_batch import EncodeVariant
        from cadenza.tokenizers.semantic import load_semantic

        torch.set_num_threads(self.plan["torch_threads"])
        plan = self.plan
        self.semantic = cached(semantic_key(plan), lambda: load_semantic(plan["kmeans_path"]))
        desc = plan["acoustic"]
        self.acoustic = cached(acoustic_key(plan), lambda: load_acoustic(
            desc["name"], weights=plan["codec_weights"], bandwidth=desc["bandwidth"], optimize=plan["optimize"],
            device=resolve_device(plan["device"]), variant=EncodeVariant.from_describe(desc)))
        self.text = None
        if plan["text"]:
            from cadenza.tokenizers.text import load_text

            self.text = cached(text_key(plan), lambda: load_text(plan["text"]["name"]))
        for kind, tok in (("semantic", self.semantic), ("acoustic", self.acoustic), ("text", self.text)):
            if tok is not None and tok.fingerprint() != self.plan[kind]["fingerprint"]:
                raise TokenizerMismatchError(f"worker loaded a different {kind} tokenizer than the launcher fixed")
        self.fingerprints = {k: (self.plan[k] or {}).get("fingerprint") for k in ("semantic", "acoustic", "text")}
        self.frame_rates = {"semantic": self.semantic.frame_rate, "acoustic": self.acoustic.frame_rate}

    def process(self, item: tuple[int, tuple[str, Any]]):
        index, (kind, payload) = item
        if kind == COUNT:
            yield item
            return
        # decode and check every clip, then encode the good ones' codec audio together (batched on a GPU)
        prepared = [self._prepare(index, sample) for sample in payload]
        ready = [clip for status, clip in prepared if status == "ready"]
        in_order = iter(self._acoustic_codes([clip["codec_audio"] for clip in ready]))  # in chunk order
        for status, clip in prepared:
            yield index, (status, clip) if status == "fail" else self._finish(clip, next(in_order))

    def _acoustic_codes(self, clips: list[np.ndarray]) -> list[Any]:
        """Codes per clip, or the exception that clip raised (recorded as its failure)."""
        try:
            return self.acoustic.encode(clips)
        except Exception as exc:  # noqa: BLE001
            if len(clips) == 1:
                return [exc]
        # find the clip that fails: alone, each clip gets the codes it would have had in the batch
        out: list[Any] = []
        for clip in clips:
            try:
                out.append(self.acoustic.encode([clip])[0])
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def _prepare(self, index: int, sample: dict[str, Any]) -> tuple[str, Any]:
        """("ready", decoded clip with its semantic tokens and codec-rate audio) or ("fail", failure dict)."""
        import librosa

        from cadenza.formats.audio import decode_audio

        key = sample["__key__"]
        meta = _meta(sample)
        shard = shards.shard_name(self.prefix, index)
        if "__error__" in sample:
            return "fail", failure(key, "bad_shard", sample["__error__"], meta, shard)
        try:
            audio, sr = decode_audio(sample)
        except Exception as exc:  # noqa: BLE001
            return "fail", failure(key, "decode", f"cannot decode flac: {exc}", meta, shard)
        min_len = int(0.1 * sr)
        if len(audio) < min_len or not np.isfinite(audio).all():
            return "fail", failure(key, "bad_audio", f"audio too short or not finite ({len(audio)} samples)",
                                   meta, shard)
        try:
            semantic = self.semantic.encode_audio(audio, sr)
            rate = self.acoustic.sample_rate
            codec_audio = audio if sr == rate else librosa.resample(audio, orig_sr=sr, target_sr=rate)
        except Exception as exc:  # noqa: BLE001 (recorded per clip; the run goes on)
            return "fail", failure(key, "tokenize", f"{type(exc).__name__}: {exc}", meta, shard)
        return "ready", {"key": key, "meta": meta, "shard": shard, "sample": sample, "semantic": semantic,
                         "codec_audio": codec_audio, "seconds": len(audio) / sr}

    def _finish(self, clip: dict[str, Any], acoustic: Any) -> tuple[str, Any]:
        key, meta, sample, semantic = clip["key"], clip["meta"], clip["sample"], clip["semantic"]
        try:
            if isinstance(acoustic, Exception):
                raise acoustic
            caption = sample["txt"].decode("utf-8") if "txt" in sample else str(meta.get("caption", ""))
            out = {"__key__": key, "semantic.npy": npy_bytes(semantic), "acoustic.npy": npy_bytes(acoustic)}
            if self.text is not None:
                out["text.npy"] = npy_bytes(self.text.encode_one(caption).astype(np.float16))
                aspects = meta.get("aspect_list") or []
                aspects_text = ", ".join(aspects) if isinstance(aspects, list) else str(aspects)
                out["aspects.npy"] = npy_bytes(self.text.encode_one(aspects_text).astype(np.float16))
        except Exception as exc:  # noqa: BLE001 (recorded per clip; the run goes on)
            return "fail", failure(key, "tokenize", f"{type(exc).__name__}: {exc}", meta, clip["shard"])
        meta.update({
            "key": key, "text": caption, "tokenizers": self.fingerprints, "frame_rates": self.frame_rates,
            "random_weights": bool(self.plan["acoustic"].get("random_weights")),
            "num_frames": {"semantic": int(semantic.shape[0]), "acoustic": int(acoustic.shape[1])},
        })
        out["json"] = json.dumps(meta, sort_keys=True, ensure_ascii=False)
        out["txt"] = caption
        return "ok", {"sample": out, "seconds": clip["seconds"]}


class WriteTokenShard(beam.DoFn):
    """(index, results + count) -> failures file, token tar, then its stats marker. Yields the stats."""

    def __init__(self, out: str, prefix: str, sources: dict[int, str]) -> None:
        self.out = out
        self.prefix = prefix
        self.sources = sources

    def process(self, group: tuple[int, Any]):
        index, items = group
        samples, failures, expected, seconds = [], [], None, 0.0
        for item in items:
            if item[0] == COUNT:
                expected = item[1]
            elif item[0] == "ok":
                samples.append(item[1]["sample"])
                seconds += item[1]["seconds"]
            else:
                failures.append(FailureRecord.from_dict(item[1]))
        if expected is not None and expected != len(samples) + len(failures):
            raise RuntimeError(f"shard {index}: {expected} clips read but {len(samples) + len(failures)} came back")
        name = shards.shard_name(self.prefix, index)
        # failures first: the stats marker written last vouches for both files
        failures_path = storage.join(self.out, "failures", name.removesuffix(".tar") + ".jsonl")
        write_failures(failures_path, failures)
        stats = {
            "shard": name, "source_shard": self.sources.get(index, ""), "samples": len(samples),
            "failures": len(failures), "audio_seconds": round(seconds, 3),
            "failures_by_category": dict(Counter(f.category for f in failures)),
        }
        shards.write_shard(storage.join(self.out, "shards", name), samples, stats)
        yield stats
