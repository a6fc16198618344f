"""Hostile shards, generated here, fed to every reader of shards.

Readers: `cadenza.formats.shards.iter_tar_samples` (audio shards in tokenize, k-means clip loading), the tokenize
pipeline's `ReadAudioShard` + failure recording, and the training/evaluation `TokenStream` (fast
`tarscan` path for USTAR tars and the `tarfile` fallback for PAX tars). Every case asserts either a clear
error naming the shard (and member) or a counted skip, and that the good samples still come through.
Nothing here may ever be unpickled: the pickles would create a marker file if they were.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.formats.shards import iter_tar_samples, list_shards
from cadenza.formats.storage import write_json_atomic
from cadenza.formats.token_spec import FingerprintMismatch, TokenSpec, load_token_dir
from cadenza.pipelines.tokenize.dofns import CLIPS, COUNT, ReadAudioShard, TokenizeBundle
from cadenza.training.data import LoaderConfig, TokenStream, make_loader
from cadenza.training.synthetic import ACOUSTIC_VOCAB, CODEBOOKS, SEMANTIC_VOCAB, make_synthetic_tokens, spec_manifest

torch.set_num_threads(1)


class _Boom:
    """Unpickling this creates MARKER: proof that nothing was unpickled when the file stays absent."""

    marker = ""

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "unpickled!"))


def _pickle_payload(marker: Path) -> bytes:
    boom = _Boom()
    boom.marker = str(marker)
    return pickle.dumps(boom)


def _npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime, info.mode = size, kind, 0, 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _members(sample: dict) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for ext, data in sample.items():
        if not ext.startswith("__"):
            data = data if isinstance(data, bytes) else data.encode()
            out.append((_info(f"{sample['__key__']}.{ext}", len(data)), data))
    return out


def _write_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], pax: bool, tail: bytes = b"") -> None:
    """A tar of `entries`; with `tail`, the archive ends in those raw bytes instead of its end marker."""
    fmt = tarfile.PAX_FORMAT if pax else tarfile.USTAR_FORMAT
    # a global PAX header sends the loader down its tarfile fallback instead of the fast scanner
    kw = {"pax_headers": {"comment": "hostile"}} if pax else {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kw) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None and info.isfile() else None)
        end = tar.offset
    data = buf.getvalue()
    path.write_bytes(data[:end] + tail if tail else data)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> list[dict]:
    """Six well-formed token samples (raw members) to surround each hostile piece."""
    d = tmp_path_factory.mktemp("good")
    make_synthetic_tokens(d, clips=6, shards=1, seconds=2.0)
    return [{k: v for k, v in s.items() if k != "__url__"} for s in iter_tar_samples(list_shards(str(d / "shards"))[0])]


def _with(sample: dict, **members) -> dict:
    return {**sample, **members}


# Each case: (before, hostile entries, after) where before/after are indices into `good`; the hostile
# entries come from a builder given the good samples and the marker path. `stops` says the reader must
# stop the shard at the hostile piece (the samples after it are then missing, counted as one broken
# shard); otherwise the hostile sample alone is skipped and the ones after it still arrive.
def _replace(i: int, **members):
    return lambda g, m: _members(_with(g[i], **members))


def _trunc(g, m):
    """The file ends half way through a member's data (a cut download)."""
    info, data = _members(g[2])[0]
    return info.tobuf(tarfile.USTAR_FORMAT) + data[: len(data) // 2]


def _huge(g, m):
    """A header declaring 4 GiB of data; the file ends soon after it."""
    return _info(f"{g[2]['__key__']}.semantic.npy", 4 << 30).tobuf(tarfile.USTAR_FORMAT) + bytes(1000)


CASES = {
    # tar structure: the shard is refused at that member (a clear error naming it)
    "dotdot_member": dict(build=lambda g, m: [(_info("../evil.json", 2), b"{}")], stops=True, msg="../evil.json"),
    "absolute_member": dict(build=lambda g, m: [(_info("/tmp/evil.json", 2), b"{}")], stops=True, msg="/tmp/evil"),
    "symlink_member": dict(
        build=lambda g, m: [(_info("evil.json", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), None)],
        stops=True, msg="evil.json"),
    "hardlink_member": dict(
        build=lambda g, m: [(_info("evil.json", kind=tarfile.LNKTYPE, linkname="/etc/shadow"), None)],
        stops=True, msg="evil.json"),
    "chardev_member": dict(
        build=lambda g, m: [(_info("evil.json", kind=tarfile.CHRTYPE, devmajor=1, devminor=3), None)],
        stops=True, msg="evil.json"),
    "fifo_member": dict(build=lambda g, m: [(_info("evil.json", kind=tarfile.FIFOTYPE), None)],
                        stops=True, msg="evil.json"),
    "duplicate_member": dict(  # the same key and member twice in a row: never silently overwritten
        build=lambda g, m: _members(g[2]) + [_members(g[2])[0]], stops=True, msg="duplicate", arrive=[0, 1, 2]),
    "duplicate_key_later": dict(  # the same key again after another sample
        build=lambda g, m: _members(g[2]) + _members(g[4]) + _members(g[2]), stops=True, msg="duplicate",
        arrive=[0, 1, 2, 4]),
    "huge_declared_size": dict(tail=_huge, stops=True, msg=""),
    "truncated": dict(tail=_trunc, stops=True, msg=""),
    # sample content: the sample is skipped and counted, the shard goes on
    "pickle_member": dict(build=lambda g, m: _members(_with(g[2], pickle=_pickle_payload(m), pyd=_pickle_payload(m))),
                          stops=False, ok=True),
    "object_dtype_npy": dict(
        build=lambda g, m: _members(_with(g[2], **{"semantic.npy": _npy(np.array([_boom(m)], dtype=object), True)})),
        stops=False, msg="unreadable semantic.npy"),
    "float64_semantic": dict(
        build=_replace(2, **{"semantic.npy": _npy(np.arange(20, dtype=np.float64))}), stops=False, msg="dtype"),
    "acoustic_3d": dict(
        build=_replace(2, **{"acoustic.npy": _npy(np.zeros((CODEBOOKS, 40, 2), np.int16))}), stops=False,
        msg="bad shapes"),
    "acoustic_wrong_codebooks": dict(
        build=_replace(2, **{"acoustic.npy": _npy(np.zeros((CODEBOOKS + 5, 40), np.int16))}), stops=False,
        msg="bad shapes"),
    "semantic_out_of_vocab": dict(
        build=_replace(2, **{"semantic.npy": _npy(np.full(20, SEMANTIC_VOCAB + 100, np.int16))}), stops=False,
        msg="out of range"),
    "acoustic_negative_codes": dict(
        build=_replace(2, **{"acoustic.npy": _npy(np.full((CODEBOOKS, 40), -3, np.int16))}), stops=False,
        msg="out of range"),
    "acoustic_out_of_vocab": dict(
        build=_replace(2, **{"acoustic.npy": _npy(np.full((CODEBOOKS, 40), ACOUSTIC_VOCAB, np.int32))}),
        stops=False, msg="out of range"),
    "text_as_ints": dict(
        build=_replace(2, **{"text.npy": _npy(np.zeros(16, np.int64))}), stops=False, msg="dtype"),
    "garbage_npy": dict(build=_replace(2, **{"semantic.npy": b"\x93NUMPY\x01\x00garbage"}), stops=False,
                        msg="unreadable semantic.npy"),
    "bad_json": dict(build=_replace(2, json=b"{not json"), stops=False, msg="unreadable json"),
}


def _boom(marker: Path) -> _Boom:
    b = _Boom()
    b.marker = str(marker)
    return b


def _build(tmp_path: Path, good: list[dict], case: str, pax: bool) -> tuple[Path, Path, list[str], list[str]]:
    """Token dir with one hostile shard (good[0:2] + hostile piece + good[4:6]) and one good shard.

    Returns (tokens dir, marker, keys that must arrive, keys that must not)."""
    spec = CASES[case]
    marker = tmp_path / "UNPICKLED"
    tokens = tmp_path / "tok"
    (tokens / "shards").mkdir(parents=True)
    before = [e for s in good[:2] for e in _members(s)]
    if "tail" in spec:  # the shard ends inside the hostile piece
        _write_tar(tokens / "shards/tokens-000000.tar", before, pax, tail=spec["tail"](good, marker))
    else:
        after = [e for s in good[4:6] for e in _members(s)]
        _write_tar(tokens / "shards/tokens-000000.tar", before + spec["build"](good, marker) + after, pax)
    _write_tar(tokens / "shards/tokens-000001.tar", [e for e in _members(good[3])], pax)
    for name in ("tokens-000000", "tokens-000001"):
        write_json_atomic(str(tokens / f"shards/{name}.stats.json"), {})
    write_json_atomic(str(tokens / "manifest.json"), spec_manifest(["tokens-000000.tar", "tokens-000001.tar"]))
    arrive = spec.get("arrive") or ([0, 1] if spec["stops"] else [0, 1, 4, 5] + ([2] if spec.get("ok") else []))
    keys = [good[i]["__key__"] for i in [*arrive, 3]]
    bad = [] if 2 in arrive else [good[2]["__key__"]]
    return tokens, marker, keys, bad


def _eval_stream(tokens: Path) -> TokenStream:
    manifest, shards = load_token_dir(str(tokens))
    return TokenStream(shards, TokenSpec.from_manifest(manifest), LoaderConfig(4, 100.0, train=False))


@pytest.mark.parametrize("pax", [False, True], ids=["ustar_fast_scan", "pax_tarfile"])
@pytest.mark.parametrize("case", list(CASES))
def test_token_loader_skips_and_counts(tmp_path, good, case, pax):
    """Training and held-out evaluation read shards through TokenStream: bad pieces are counted."""
    tokens, marker, keys, bad = _build(tmp_path, good, case, pax)
    stream = _eval_stream(tokens)
    seen = [k for batch in make_loader(stream) for k in batch["keys"]]
    assert sorted(seen) == sorted(keys)
    assert not set(bad) & set(seen)
    c = stream.counts
    spec = CASES[case]
    if spec.get("ok"):
        assert (c.unreadable_shards, c.corrupt_samples) == (0, 0)
    elif spec["stops"]:
        assert c.unreadable_shards == 1 and c.corrupt_samples == 0
        assert "tokens-000000.tar" in c.errors[0] and spec["msg"] in c.errors[0]
    else:
        assert (c.unreadable_shards, c.corrupt_samples) == (0, 1)
        assert good[2]["__key__"] in c.errors[0] and spec["msg"] in c.errors[0]
    assert not marker.exists()


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c]["stops"]])
def test_iter_tar_samples_refuses_with_shard_and_member(tmp_path, good, case):
    tokens, marker, keys, _ = _build(tmp_path, good, case, pax=False)
    path = str(tokens / "shards/tokens-000000.tar")
    got = []
    with pytest.raises((ValueError, tarfile.TarError)) as err:
        got.extend(s["__key__"] for s in iter_tar_samples(path))
    arrive = CASES[case].get("arrive", [0, 1])
    assert got == [good[i]["__key__"] for i in arrive]  # what came before the hostile piece is intact
    if CASES[case]["msg"]:
        assert path in str(err.value) and CASES[case]["msg"] in str(err.value)


@pytest.mark.parametrize("case", ["pickle_member", "object_dtype_npy"])
def test_iter_tar_samples_hands_pickles_over_as_bytes(tmp_path, good, case):
    tokens, marker, _, _ = _build(tmp_path, good, case, pax=False)
    samples = list(iter_tar_samples(str(tokens / "shards/tokens-000000.tar")))
    assert len(samples) == 5 and all(isinstance(v, bytes) for s in samples for k, v in s.items() if k[:2] != "__")
    assert not marker.exists()


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c]["stops"]])
def test_tokenize_records_unreadable_audio_shard(tmp_path, good, case):
    """ReadAudioShard + TokenizeBundle (the tokenize pipeline's reader): a broken shard becomes one
    `bad_shard` failure naming it, the samples before the break still go on, and the count matches."""
    tokens, marker, _, _ = _build(tmp_path, good, case, pax=False)
    path = str(tokens / "shards/tokens-000000.tar")
    out = list(ReadAudioShard(chunk_size=1).process((7, path)))
    samples = [s for _, (kind, chunk) in out if kind == CLIPS for s in chunk]
    count = [(i, n) for i, (kind, n) in out if kind == COUNT]
    assert count == [(7, len(samples))]
    assert [s["__key__"] for s in samples[:-1]] == [good[i]["__key__"] for i in CASES[case].get("arrive", [0, 1])]
    bundle = TokenizeBundle({}, "tokens")  # no setup: a recorded error never reaches a tokenizer
    status, failure = bundle._prepare(7, samples[-1])
    assert status == "fail" and failure["category"] == "bad_shard" and path in failure["message"]
    assert failure["shard"] == "tokens-000007.tar"


def test_tokenize_records_undecodable_and_short_audio(good):
    """Audio members that are not audio, or too short to tokenize, fail per clip with a category."""
    import soundfile as sf

    bundle = TokenizeBundle({}, "tokens")
    meta = json.dumps({"ytid": "abcdefghijk", "row": 4})
    short = io.BytesIO()
    sf.write(short, np.zeros(100, np.int16), 32000, format="FLAC")
    cases = {"png_as_flac": (b"\x89PNG\r\n\x1a\n" + bytes(64), "decode"), "tiny": (short.getvalue(), "bad_audio"),
             "missing": (None, "decode")}
    for name, (flac, category) in cases.items():
        sample = {"__key__": f"abcdefghijk_{name}", "json": meta.encode()}
        if flac is not None:
            sample["flac"] = flac
        status, failure = bundle._prepare(0, sample)
        assert (status, failure["category"], failure["row"]) == ("fail", category, 4), name


def test_manifest_that_lies_about_its_tokenizer(tmp_path):
    """A manifest claiming other tokenizers than the samples were made with stops the loader, naming the
    shard, the sample and both fingerprints."""
    tokens = tmp_path / "tok"
    make_synthetic_tokens(tokens, clips=4, shards=1)
    manifest = json.loads((tokens / "manifest.json").read_text())
    manifest["tokenizers"]["acoustic"]["fingerprint"] = "encodec_24khz-liar"
    write_json_atomic(str(tokens / "manifest.json"), manifest)
    with pytest.raises(FingerprintMismatch, match=r"tokens-000000\.tar: sample \S+: acoustic fingerprint "
                       r"synthetic-ac-1 != expected encodec_24khz-liar"):
        list(make_loader(_eval_stream(tokens)))


def test_manifest_that_lies_about_vocab(tmp_path):
    """A manifest that claims a smaller vocabulary than the tokens use: every sample is refused as out of
    range (a model built from it would index past its embeddings)."""
    tokens = tmp_path / "tok"
    make_synthetic_tokens(tokens, clips=4, shards=1)
    manifest = json.loads((tokens / "manifest.json").read_text())
    manifest["tokenizers"]["semantic"]["vocab_size"] = 2
    write_json_atomic(str(tokens / "manifest.json"), manifest)
    stream = _eval_stream(tokens)
    assert list(make_loader(stream)) == []
    assert stream.counts.corrupt_samples == 4
    assert all("out of range" in e for e in stream.counts.errors)


def test_training_stream_over_every_hostile_shard_at_once(tmp_path, good):
    """The infinite training stream over all hostile shards plus good ones: only good samples come out,
    every good one does, and nothing is unpickled."""
    tokens = tmp_path / "tok"
    (tokens / "shards").mkdir(parents=True)
    marker = tmp_path / "UNPICKLED"
    names, expected = [], set()
    for i, case in enumerate(CASES):
        sub = tmp_path / case
        t, m, keys, _ = _build(sub, good, case, pax=bool(i % 2))
        for j, src in enumerate(sorted((t / "shards").glob("*.tar"))):
            name = f"tokens-{2 * i + j:06d}.tar"
            os.replace(src, tokens / "shards" / name)
            write_json_atomic(str(tokens / "shards" / name.replace(".tar", ".stats.json")), {})
            names.append(name)
        expected |= set(keys)
        assert not m.exists()
    write_json_atomic(str(tokens / "manifest.json"), spec_manifest(names))
    manifest, shards = load_token_dir(str(tokens))
    stream = TokenStream(shards, TokenSpec.from_manifest(manifest), LoaderConfig(4, 1.0, shuffle_buffer=8))
    seen = set()
    for step, batch in enumerate(make_loader(stream)):
        seen |= set(batch["keys"])
        assert int(batch["semantic"].max()) < SEMANTIC_VOCAB and int(batch["acoustic"].min()) >= 0
        if step == 60:
            break
    assert seen == expected
    assert stream.counts.unreadable_shards >= sum(1 for c in CASES.values() if c["stops"])
    assert stream.counts.corrupt_samples >= sum(1 for c in CASES.values() if not c["stops"] and not c.get("ok"))
    assert not marker.exists()


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c]["stops"]])
def test_kmeans_clip_loading_keeps_what_it_can_read(tmp_path, case):
    """fit_kmeans / codec calibration pick clips with select_clips + load_clips: a broken audio shard
    gives its clips up to the break and the fit goes on (the tokenize pass records the shard)."""
    import soundfile as sf

    from cadenza.formats.audio import load_clips, select_clips

    def flac(seed: int) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, np.random.default_rng(seed).uniform(-0.5, 0.5, 3200).astype(np.float32), 32000, format="FLAC")
        return buf.getvalue()

    audio = [{"__key__": f"clip{i:07d}_00000000_00010000", "flac": flac(i), "json": b"{}"} for i in range(6)]
    tokens, marker, _, _ = _build(tmp_path, audio, case, pax=False)
    paths = [str(p) for p in sorted((tokens / "shards").glob("*.tar"))]
    clips = list(load_clips(select_clips(paths, 100)))
    arrive = CASES[case].get("arrive", [0, 1]) + [3]
    assert sorted(k for k, _, _ in clips) == sorted(audio[i]["__key__"] for i in arrive)
    assert all(sr == 32000 and len(a) == 3200 for _, a, sr in clips)


def test_evaluate_counts_hostile_heldout_shards(tmp_path, good, trained):
    """`evaluate` over a held-out dir with hostile shards: the good clips are scored, the bad pieces
    are counted in metrics.json, nothing is unpickled."""
    from cadenza.evaluation.evaluate import EvalConfig, evaluate
    from cadenza.training.synthetic import ToneDecoder

    heldout = tmp_path / "heldout"
    (heldout / "shards").mkdir(parents=True)
    names, expected = [], set()
    for i, case in enumerate(["symlink_member", "pickle_member", "object_dtype_npy", "semantic_out_of_vocab"]):
        t, marker, keys, _ = _build(tmp_path / case, good, case, pax=False)
        src = t / "shards/tokens-000000.tar"
        name = f"tokens-{i:06d}.tar"
        os.replace(src, heldout / "shards" / name)
        write_json_atomic(str(heldout / "shards" / name.replace(".tar", ".stats.json")), {})
        names.append(name)
        expected |= set(keys) - {good[3]["__key__"]}  # good[3] lives in the shard not copied here
    write_json_atomic(str(heldout / "manifest.json"), spec_manifest(names))
    metrics = evaluate(trained[1], str(heldout), tmp_path / "eval", decoder=ToneDecoder(),
                       config=EvalConfig(num_samples=2, write_wavs=False))
    assert metrics["data"] == {"corrupt_samples": 2, "unreadable_shards": 1}
    assert metrics["nll"]["clips"] == len(expected)
    assert json.loads((tmp_path / "eval/metrics.json").read_text())["data"]["corrupt_samples"] == 2
    assert not any((tmp_path / c / "UNPICKLED").exists() for c in CASES)
