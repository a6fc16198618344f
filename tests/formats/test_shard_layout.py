"""Shard directories hold only tars; stats, tables and failures live beside them; old layouts still read."""

from __future__ import annotations

import json
import shutil
import tarfile

import pyarrow.parquet as pq

from cadenza.formats import failures, shards, storage
from cadenza.formats.index import rebuild_index, write_samples_index


def sample(key: str, caption: str = "a calm chord") -> dict:
    meta = {"key": key, "ytid": key[:11], "row": 1, "start_s": 0.0, "end_s": 10.0, "caption": caption,
            "text": caption, "url": f"https://example.invalid/{key[:11]}", "audioset_labels": ["/m/04rlf"],
            "duration_s": 10.0, "sample_rate": 32000, "quality": {"rms_dbfs": -20.0, "peak": 0.5,
                                                                  "silence_fraction": 0.0, "clipping_fraction": 0.0}}
    return {"__key__": key, "flac": b"fLaC" + key.encode(), "json": json.dumps(meta), "txt": caption}


def failure(key: str, shard: str) -> failures.FailureRecord:
    return failures.FailureRecord(key=key, stage="fetch", category="not_found", message="HTTP 404", attempts=1,
                                ytid=key[:11], row=2, shard=shard,
                                extra={"source_url": "https://example.invalid/x", "window": [0.0, 10.0]})


def tar_keys(path) -> list[str]:
    with tarfile.open(path) as t:
        return sorted({m.name.split(".", 1)[0] for m in t.getmembers()})


def test_shard_dir_holds_only_tars_and_tables_match_them(tmp_path):
    out = tmp_path / "out"
    keys = [f"ytid{i:07d}_00000000_00010000" for i in range(5)]
    shards.write_shard(str(out / "shards" / "audio-000000.tar"), [sample(k) for k in keys[:3]], {"rows": 3})
    shards.write_shard(str(out / "shards" / "audio-000001.tar"), [sample(k) for k in keys[3:]], {"rows": 2})
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["audio-000000.tar", "audio-000001.tar"]
    assert sorted(p.name for p in (out / "stats").iterdir()) == ["audio-000000.stats.json", "audio-000001.stats.json"]
    for tar in sorted((out / "shards").glob("*.tar")):
        table = pq.read_table(out / "samples" / tar.name.replace(".tar", ".parquet"))
        assert table.num_rows == len(tar_keys(tar))
        assert sorted(table.column("key").to_pylist()) == tar_keys(tar)
        assert json.loads((out / "stats" / tar.name.replace(".tar", ".stats.json")).read_text())["bytes"] == \
            tar.stat().st_size
    row = pq.read_table(out / "samples" / "audio-000000.parquet").to_pylist()[0]
    assert (row["status"], row["caption"], row["labels"], row["rms_dbfs"]) == ("success", "a calm chord",
                                                                                ["/m/04rlf"], -20.0)
    assert row["bytes"] == sum(len(v) for k, v in sample(keys[0]).items() if not k.startswith("__"))


def test_a_shard_whose_rows_all_failed_writes_no_tar(tmp_path):
    tar = str(tmp_path / "shards" / "audio-000000.tar")
    shards.write_shard(tar, [sample("ytid0000000_00000000_00010000")], {})
    shards.write_shard(tar, [], {"rows": 1})  # a rerun in which the one row failed
    assert not (tmp_path / "shards" / "audio-000000.tar").exists()
    assert shards.is_complete(tar) and shards.read_stats(tar)["bytes"] == 0
    assert shards.list_shards(str(tmp_path / "shards")) == []
    assert shards.finished_shard_names(str(tmp_path / "shards")) == ["audio-000000.tar"]
    assert pq.read_table(tmp_path / "samples" / "audio-000000.parquet").num_rows == 0


def old_layout(out):
    """A directory as versions before this layout wrote it: stats among the tars, an empty tar for a
    shard whose rows all failed, no tables."""
    (out / "shards").mkdir(parents=True)
    (out / "failures").mkdir()
    full = out / "shards" / "audio-000000.tar"
    full.write_bytes(shards.tar_bytes([sample("ytid0000000_00000000_00010000")]))
    (out / "shards" / "audio-000000.stats.json").write_text(json.dumps({"bytes": full.stat().st_size}))
    empty = out / "shards" / "audio-000001.tar"
    empty.write_bytes(shards.tar_bytes([]))
    (out / "shards" / "audio-000001.stats.json").write_text(json.dumps({"bytes": empty.stat().st_size}))
    (out / "failures" / "audio-000001.jsonl").write_bytes(
        failures.failures_jsonl([failure("gone0000000_00000000_00010000", "audio-000001.tar")]))
    return out


def test_old_layout_reads_as_it_is_and_migrates(tmp_path):
    out = old_layout(tmp_path / "old")
    tars = [str(out / "shards" / n) for n in ("audio-000000.tar", "audio-000001.tar")]
    assert [shards.is_complete(t) for t in tars] == [True, True]  # read both layouts
    assert shards.read_stats(tars[0])["bytes"] > 0
    assert shards.migrate_layout(str(out / "shards")) == ["audio-000000.tar", "audio-000001.tar"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["audio-000000.tar"]
    assert [shards.is_complete(t) for t in tars] == [True, True]
    assert shards.read_stats(tars[1])["bytes"] == 0
    assert shards.migrate_layout(str(out / "shards")) == []  # once is enough


def test_a_migration_cut_short_finishes_on_the_next_run(tmp_path):
    out = old_layout(tmp_path / "old")
    tar = str(out / "shards" / "audio-000001.tar")
    # killed after writing the new marker of the empty shard, before removing its tar and old marker
    storage.write_json_atomic(shards.stats_path(tar), {"bytes": 0, "rows": 1})
    shards.migrate_layout(str(out / "shards"))
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["audio-000000.tar"]
    assert shards.read_stats(tar) == {"bytes": 0, "rows": 1} and shards.is_complete(tar)


def test_index_rebuilds_tables_of_an_old_dir_and_unions_them(tmp_path):
    out = old_layout(tmp_path / "old")
    result = rebuild_index(str(out))
    assert (result["rows"], result["success"], result["failed"], result["migrated_shards"]) == (2, 1, 1, 2)
    index = pq.read_table(out / "samples.parquet").to_pylist()
    by_status = {r["status"]: r for r in index}
    assert by_status["success"]["key"] == "ytid0000000_00000000_00010000"
    lost = by_status["failed"]
    assert (lost["category"], lost["error_message"], lost["shard"], lost["start_s"]) == ("not_found", "HTTP 404",
                                                                                       "audio-000001.tar", 0.0)
    assert pq.read_table(out / "failures" / "audio-000001.parquet").num_rows == 1
    # the per-run index makes tables a shard lacks, and agrees with the rebuild
    (out / "samples" / "audio-000000.parquet").unlink()
    assert write_samples_index(str(out))["rows"] == 2 and (out / "samples" / "audio-000000.parquet").is_file()


def test_failures_are_written_as_records_and_as_a_table(tmp_path):
    path = str(tmp_path / "failures" / "audio-000000.jsonl")
    failures.write_failures(path, [failure("b" * 11 + "_00000000_00010000", "audio-000000.tar")])
    assert [r.category for r in failures.read_failures(str(tmp_path / "failures"))] == ["not_found"]
    row = pq.read_table(tmp_path / "failures" / "audio-000000.parquet").to_pylist()[0]
    assert (row["status"], row["error_message"], row["url"]) == ("failed", "HTTP 404", "https://example.invalid/x")


def test_split_views_link_relatively_and_a_copy_still_reads(tmp_path):
    from cadenza.formats.token_spec import TokenSpec, load_token_dir
    from cadenza.training.data import LoaderConfig, TokenStream
    from cadenza.training.splits import split_token_dir
    from cadenza.training.synthetic import make_synthetic_tokens

    work = tmp_path / "work"
    make_synthetic_tokens(str(work / "tokens"), clips=12, shards=3, seconds=1.0)
    split_token_dir(str(work / "tokens"), str(work / "split/train"), str(work / "split/heldout"))
    link = work / "split/train/shards/tokens-000000.tar"
    assert link.is_symlink() and not link.readlink().is_absolute()
    assert sorted(p.name for p in (work / "split/train/shards").iterdir()) == ["tokens-000000.tar",
                                                                               "tokens-000001.tar"]

    def clips(view) -> int:
        manifest, paths = load_token_dir(str(view))
        spec = TokenSpec.from_manifest(manifest)
        stream = TokenStream(paths, spec, LoaderConfig(batch_size=4, train=False, crop_seconds=1.0))
        n = sum(len(batch["keys"]) for batch in stream)
        assert stream.counts.truncated_shards == 0 and stream.counts.unreadable_shards == 0
        return n

    # the tree moved elsewhere with its links kept (cp -a, rsync -a, tar), the original gone
    shutil.copytree(work, tmp_path / "moved", symlinks=True)
    shutil.rmtree(work / "tokens")
    assert clips(tmp_path / "moved/split/train") == 8 and clips(tmp_path / "moved/split/heldout") == 4
    # one view copied on its own, links followed
    shutil.copytree(tmp_path / "moved/split/heldout", tmp_path / "alone")
    assert clips(tmp_path / "alone") == 4
