from __future__ import annotations

import io
import tarfile

import pytest
import webdataset as wds

from cadenza.formats import failures, shards, storage


def samples(n: int) -> list[dict]:
    return [{"__key__": f"k{i:03d}", "txt": f"caption {i}", "json": b'{"i": %d}' % i} for i in range(n)]


def test_tar_is_deterministic_and_sorted(tmp_path):
    a = shards.tar_bytes(samples(5))
    b = shards.tar_bytes(list(reversed(samples(5))))
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a)) as t:
        members = t.getmembers()
    assert [m.name for m in members][:4] == ["k000.txt", "k000.json", "k001.txt", "k001.json"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o644)}


def test_write_shard_marker_and_readback(tmp_path):
    out = str(tmp_path / "shards")
    path = storage.join(out, shards.shard_name("audio", 3))
    assert path.endswith("audio-000003.tar")
    shards.write_shard(path, samples(4), {"count": 4})
    assert shards.is_complete(path)
    assert storage.read_json(shards.stats_path(path))["count"] == 4
    assert shards.list_shards(out) == [path]
    got = list(shards.iter_tar_samples(path))
    assert [s["__key__"] for s in got] == ["k000", "k001", "k002", "k003"]
    assert got[2]["txt"] == b"caption 2"
    # webdataset reads the same tar
    keys = [s["__key__"] for s in wds.WebDataset(path, shardshuffle=False)]
    assert keys == ["k000", "k001", "k002", "k003"]
    # a tar without its stats file is not complete
    (tmp_path / "shards" / "audio-000004.tar").write_bytes(shards.tar_bytes(samples(1)))
    assert shards.list_shards(out) == [path]
    assert len(shards.list_shards(out, complete_only=False)) == 2


def test_keys_with_dots_refused():
    with pytest.raises(ValueError, match="must not contain"):
        shards.tar_bytes([{"__key__": "a.b", "txt": b"x"}])


def test_unsafe_members_refused(tmp_path):
    p = tmp_path / "evil.tar"
    with tarfile.open(p, "w") as t:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match=r"\.\./escape\.txt"):
        list(shards.iter_tar_samples(str(p)))


def test_fsspec_memory_filesystem():
    path = "memory://bucket/shards/audio-000000.tar"
    shards.write_shard(path, samples(2), {"count": 2})
    assert shards.list_shards("memory://bucket/shards") == [path]
    assert [s["__key__"] for s in shards.iter_tar_samples(path)] == ["k000", "k001"]


def test_failure_records_round_trip(tmp_path):
    recs = [failures.FailureRecord(key="b", stage="fetch", category="not_found", message="404", attempts=1),
            failures.FailureRecord(key="a", stage="validate", category="bad_ytid", message="x", row=3)]
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "part.jsonl").write_bytes(failures.failures_jsonl(recs))
    back = failures.read_failures(str(tmp_path / "f"))
    assert [r.key for r in back] == ["a", "b"] and back[1].category == "not_found"


def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    import fsspec.implementations.local as local

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local.LocalFileOpener, "write", no_space)
    with pytest.raises(OSError) as e:
        shards.write_shard(str(tmp_path / "audio-000000.tar"), [{"__key__": "a", "txt": b"x"}], {})
    assert storage.is_disk_full(e.value)
    assert list(tmp_path.iterdir()) == []


def test_is_disk_full_sees_wrapped_and_textual_enospc():
    import errno

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("stage failed") from inner
    except RuntimeError as outer:
        assert storage.is_disk_full(outer)
    assert storage.is_disk_full(RuntimeError("OSError: [Errno 28] No space left on device [while running 'W']"))
    assert storage.is_disk_full(Exception("I/O error: No space left on device (os error 28)"))
    assert not storage.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not storage.is_disk_full(ValueError("28 clips"))


def test_remove_partial_writes_keeps_whole_files(tmp_path):
    shards.write_shard(str(tmp_path / "shards" / "audio-000000.tar"), samples(2), {})
    (tmp_path / "shards" / "audio-000001.tar.tmp-1a2b3c4d").write_bytes(b"half a tar")
    storage.remove_partial_writes(str(tmp_path / "shards"))
    storage.remove_partial_writes(str(tmp_path / "missing"))  # nothing there yet: fine
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["audio-000000.tar"]
    assert sorted(p.name for p in (tmp_path / "stats").iterdir()) == ["audio-000000.stats.json"]
