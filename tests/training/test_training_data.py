"""The token-shard loader: corruption, fingerprints, splits, weights, aligned crops, exact skipping."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.formats.shards import iter_tar_samples, list_shards, write_shard
from cadenza.formats.token_spec import FingerprintMismatch, TokenSpec, load_token_dir
from cadenza.training.data import LoaderConfig, TokenStream, make_loader
from cadenza.training.synthetic import make_synthetic_tokens

torch.set_num_threads(1)


def _stream(tokens: Path, **kw) -> TokenStream:
    manifest, shards = load_token_dir(str(tokens))
    cfg = LoaderConfig(**{"batch_size": 4, "crop_seconds": 2.0, "shuffle_buffer": 8, **kw.pop("cfg", {})})
    return TokenStream(shards, TokenSpec.from_manifest(manifest), cfg, **kw)


def _complete_keys(tar_path: Path) -> set[str]:
    """Keys whose five members can all be read from a (possibly truncated) tar."""
    members: dict[str, int] = Counter()
    try:
        with tarfile.open(tar_path, mode="r|") as tar:
            for m in tar:
                tar.extractfile(m).read()
                members[m.name.split(".", 1)[0]] += 1
    except tarfile.ReadError:
        pass
    return {k for k, n in members.items() if n == 5}


def test_loader_survives_truncated_tar_and_missing_member(tmp_path):
    tokens = tmp_path / "tok"
    make_synthetic_tokens(tokens, clips=24, shards=4)
    shards = [Path(p) for p in list_shards(str(tokens / "shards"))]
    with tarfile.open(shards[0]) as tar:
        members = tar.getmembers()
    data = shards[0].read_bytes()
    # shard 0: cut in the middle of a member's data (the tar reader raises)
    shards[0].write_bytes(data[: members[12].offset_data + 10])
    # shard 3: cut at a member boundary (no end-of-archive marker; its stats also give another size)
    data3 = shards[3].read_bytes()
    shards[3].write_bytes(data3[: members[10].offset])
    # shard 1: rewrite with one sample that lost its acoustic tokens
    samples = list(iter_tar_samples(str(shards[1])))
    broken_key = samples[0]["__key__"]
    del samples[0]["acoustic.npy"]
    write_shard(str(shards[1]), [{k: v for k, v in s.items() if k != "__url__"} for s in samples], {})

    stream = _stream(tokens, cfg={"train": False, "crop_seconds": 100.0})
    seen = [k for batch in make_loader(stream) for k in batch["keys"]]

    expected = _complete_keys(shards[0]) | _complete_keys(shards[3]) | {s["__key__"] for s in samples[1:]}
    expected |= {s["__key__"] for s in iter_tar_samples(str(shards[2]))}
    assert len(_complete_keys(shards[0])) == 2 and len(_complete_keys(shards[3])) == 2
    assert sorted(seen) == sorted(expected)
    assert broken_key not in seen
    assert stream.counts.unreadable_shards == 2
    assert stream.counts.truncated_shards == 2
    assert stream.counts.corrupt_samples >= 1
    assert any("missing member acoustic.npy" in e for e in stream.counts.errors)
    assert any("unexpected end of data" in e for e in stream.counts.errors)
    assert any("no end-of-archive marker" in e for e in stream.counts.errors)
    assert stream.counts.samples == len(seen)

    # the endless training stream goes on across epochs and reports the same problems in its batches
    train = _stream(tokens)
    it = iter(make_loader(train))
    batches = [next(it) for _ in range(12)]  # more than one epoch's worth
    counts = batches[-1]["counts"][0]
    assert counts["unreadable_shards"] >= 4 and counts["truncated_shards"] >= 4 and counts["corrupt_samples"] >= 2


def test_foreign_fingerprint_stops_the_stream(tmp_path):
    make_synthetic_tokens(tmp_path / "a", clips=8, shards=2)
    make_synthetic_tokens(tmp_path / "b", clips=8, shards=2, fingerprints={"acoustic": "another-codec"})
    # a shard tokenized with another codec sneaks into dir a
    shutil.copy(tmp_path / "b/shards/tokens-000001.tar", tmp_path / "a/shards/tokens-000001.tar")
    stream = _stream(tmp_path / "a", cfg={"train": False})
    with pytest.raises(FingerprintMismatch, match="acoustic fingerprint another-codec"):
        list(make_loader(stream))
    spec_a = TokenSpec.from_manifest(json.loads((tmp_path / "a/manifest.json").read_text()))
    spec_b = TokenSpec.from_manifest(json.loads((tmp_path / "b/manifest.json").read_text()))
    with pytest.raises(FingerprintMismatch):
        spec_a.check_same(spec_b, "b vs a")


def test_ranks_read_disjoint_shards_or_samples(tmp_path):
    make_synthetic_tokens(tmp_path / "four", clips=16, shards=4)
    make_synthetic_tokens(tmp_path / "one", clips=10, shards=1)
    for name in ("four", "one"):
        per_rank = []
        for rank in range(2):
            s = _stream(tmp_path / name, rank=rank, world_size=2, cfg={"train": False})
            per_rank.append([(k, u) for b in make_loader(s) for k, u in zip(b["keys"], b["urls"], strict=True)])
        keys = [{k for k, _ in r} for r in per_rank]
        assert keys[0] and keys[1] and not keys[0] & keys[1]
        assert len(keys[0] | keys[1]) == (16 if name == "four" else 10)
        if name == "four":  # enough shards: split by shard
            urls = [{u for _, u in r} for r in per_rank]
            assert len(urls[0]) == len(urls[1]) == 2 and not urls[0] & urls[1]


def test_weights_repeat_and_drop_clips(tmp_path):
    make_synthetic_tokens(tmp_path / "t", clips=16, shards=2)
    ytids = [f"syn{i:08d}" for i in range(16)]
    weights = {ytids[0]: 0.0, ytids[1]: 0.0, ytids[2]: 3.0}
    s = _stream(tmp_path / "t", weights=weights, cfg={"batch_size": 1, "shuffle_buffer": 4})
    it = iter(make_loader(s))
    epoch = Counter(next(it)["ytids"][0] for _ in range(16 - 2 + 2))  # one epoch: 14 clips + 2 extra copies
    assert epoch[ytids[0]] == epoch[ytids[1]] == 0
    assert epoch[ytids[2]] == 3
    assert all(epoch[y] == 1 for y in ytids[3:])


def test_crops_stay_aligned_across_frame_rates(tmp_path):
    make_synthetic_tokens(tmp_path / "t", clips=8, shards=2, seconds=6.0)
    it = iter(make_loader(_stream(tmp_path / "t", cfg={"crop_seconds": 2.5})))
    starts = set()
    for _ in range(6):
        b = next(it)
        assert b["semantic"].shape[1] == 25 and b["acoustic"].shape[2] == 50
        assert b["semantic_mask"].all() and b["acoustic_mask"].all()
        sem, ac = b["semantic"].numpy(), b["acoustic"].numpy()
        t = np.arange(50)
        # the synthetic rule a[0, t] = 2 * s[t // 2] + t % 2 holds only if both crops start at the same instant
        np.testing.assert_array_equal(ac[:, 0], (2 * sem[:, t // 2] + t % 2) % 32)
        starts.update(sem[:, 0].tolist())
    assert len(starts) > 1  # crops really are random


def test_padding_masks_for_short_clips(tmp_path):
    make_synthetic_tokens(tmp_path / "t", clips=4, shards=1, seconds=1.5)
    b = next(iter(make_loader(_stream(tmp_path / "t", cfg={"crop_seconds": 3.0}))))
    assert b["semantic"].shape[1] == 15 and b["semantic_mask"].sum(1).tolist() == [15] * 4
    assert b["acoustic"].shape[2] == 30 and b["acoustic_mask"].all()
    assert b["has_text"].all() and b["text"].shape == (4, 16)


@pytest.mark.parametrize("workers", [0, 2])
def test_skipping_batches_resumes_the_same_stream(tmp_path, workers):
    make_synthetic_tokens(tmp_path / "t", clips=12, shards=4)
    cfg = {"num_workers": workers}
    full = iter(make_loader(_stream(tmp_path / "t", cfg=cfg)))
    reference = [next(full)["keys"] for _ in range(9)]
    resumed = iter(make_loader(_stream(tmp_path / "t", cfg=cfg, skip_batches=5)))
    assert [next(resumed)["keys"] for _ in range(4)] == reference[5:]


def test_text_embeddings_round_trip(tmp_path):
    make_synthetic_tokens(tmp_path / "t", clips=4, shards=1, classes=2)
    b = next(iter(make_loader(_stream(tmp_path / "t", cfg={"train": False}))))
    raw = next(iter_tar_samples(str(tmp_path / "t/shards/tokens-000000.tar")))
    first = np.load(io.BytesIO(raw["text.npy"])).astype(np.float32)
    np.testing.assert_allclose(b["text"][0].numpy(), first)


def test_pax_tars_fall_back_to_tarfile(tmp_path):
    """Shards written by other tools (PAX headers, long names) still load."""
    make_synthetic_tokens(tmp_path / "t", clips=4, shards=1)
    shard = tmp_path / "t/shards/tokens-000000.tar"
    samples = list(iter_tar_samples(str(shard)))
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        for s in samples:
            for ext, data in s.items():
                if ext.startswith("__"):
                    continue
                info = tarfile.TarInfo(f"{s['__key__']}.{ext}")
                info.size = len(data)
                info.pax_headers = {"comment": "written elsewhere"}
                tar.addfile(info, io.BytesIO(data))
    (tmp_path / "t/shards/tokens-000000.stats.json").write_text("{}")
    stream = _stream(tmp_path / "t", cfg={"train": False})
    keys = [k for b in make_loader(stream) for k in b["keys"]]
    assert sorted(keys) == sorted(s["__key__"] for s in samples)
    assert stream.counts.unreadable_shards == 0 and stream.counts.corrupt_samples == 0
