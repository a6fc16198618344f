"""run_ingest end to end on the real Beam DirectRunner, real yt-dlp and ffmpeg, loopback only."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
from ingest_testkit import (  # noqa: F401 (media_dir is a fixture)
    FAULTS,
    RETRY_OK,
    SESSION_FAULTS,
    media_dir,
    ontology_file,
    read_all,
    read_pending,
    read_shard,
    server_faults,
    write_csv,
)

from cadenza.formats.failures import read_failures
from cadenza.musiccaps.schema import clip_key
from cadenza.pipelines.ingest.run import IngestConfig, run_ingest
from cadenza.testing.mediaserver import MediaServer

BEAM = ["--direct_running_mode=in_memory"]  # one process: fast to start, same code path


def config(csv, out, srv, **kw) -> IngestConfig:
    base = dict(csv=str(csv), out=str(out), source_url_template=srv.url_template("m4a"), shard_size=3,
                max_attempts=2, backoff_base_s=0.01, block_pause_s=0.01, socket_timeout_s=5, max_filesize_mb=2,
                progress=False)
    return IngestConfig(**(base | kw))


@pytest.fixture(scope="module")
def faulty_run(media_dir, tmp_path_factory):  # noqa: F811
    """One ingest over good rows, every fault, a 429, a window past the end, and invalid rows."""
    d = tmp_path_factory.mktemp("faulty")
    rows = [("goodAAAAAAA", 0, 10), ("goodBBBBBBB", 2, 12), *[(y, 0, 10) for y in sorted(FAULTS)],
            (RETRY_OK, 1, 11), ("goodCCCCCCC", 5, 15), ("goodAAAAAAA", 10, 20), ("goodAAAAAAA", 0, 10),
            ("not-an-id", 0, 10), ("goodBBBBBBB", 8, 3)]
    csv = write_csv(d / "mc.csv", rows, extra_lines=["goodCCCCCCC,0,10,/m/04rlf"])
    with MediaServer(media_dir, faults=server_faults()) as srv:
        manifest = run_ingest(config(csv, d / "out", srv, ontology=str(ontology_file(d / "onto.json"))), BEAM)
    return rows, manifest, d / "out"


def test_every_row_ends_in_exactly_one_place(faulty_run):
    rows, manifest, out = faulty_run
    samples, failures = read_all(out)
    pending = read_pending(out)
    landed = sorted(s["row"] for s in samples.values())
    failed = sorted(f["row"] for f in failures)
    waiting = sorted(i + 1 for i, r in enumerate(rows) if clip_key(*r) in pending)
    n_rows = len(rows) + 1  # + the truncated line
    assert sorted(landed + failed + waiting) == list(range(1, n_rows + 1))
    assert manifest["rows_in"] == n_rows
    assert manifest["clips_written"] == len(samples) == 4
    assert manifest["rows_valid"] == n_rows - 4
    assert manifest["rows_pending"] == len(pending) == len(SESSION_FAULTS)
    assert manifest["clips_written"] + manifest["clips_failed"] + manifest["rows_pending"] + manifest[
        "rows_rejected"] == n_rows
    assert sum(manifest["failures_by_category"].values()) == len(failures)


def test_failure_categories(faulty_run):
    _, manifest, out = faulty_run
    by_ytid = {f.ytid: f for f in read_failures(str(out / "failures")) if f.stage != "validate"}
    for ytid, (_, category) in FAULTS.items():
        if ytid in SESSION_FAULTS:  # the session's fault: no record, pending with its category
            assert ytid not in by_ytid and read_pending(out)[clip_key(ytid, 0, 10)] == category
        else:
            assert by_ytid[ytid].category == category, by_ytid[ytid]
    assert sum(manifest["pending_by_category"].values()) == len(SESSION_FAULTS)
    assert manifest["session"]["blocked"] is False and manifest["session"]["max_videos_per_hour"] == 0
    assert by_ytid["goodCCCCCCC"].category == "too_short" and by_ytid["goodCCCCCCC"].stage == "clip"
    assert by_ytid["f404xxxxxxx"].attempts == 1
    validate = sorted((f.row, f.category) for f in read_failures(str(out / "failures")) if f.stage == "validate")
    assert validate == [(14, "duplicate"), (15, "invalid_ytid"), (16, "invalid_end_s"), (17, "malformed_row")]
    assert manifest["failures_by_category"]["not_found"] == 1
    assert manifest["failures_by_category"]["duplicate"] == 1


def test_samples_and_their_metadata(faulty_run):
    _, manifest, out = faulty_run
    samples, _ = read_all(out)
    assert set(samples) == {"goodAAAAAAA_00000000_00010000", "goodBBBBBBB_00002000_00012000",
                            f"{RETRY_OK}_00001000_00011000", "goodAAAAAAA_00010000_00020000"}
    meta = samples["goodBBBBBBB_00002000_00012000"]
    assert meta["ytid"] == "goodBBBBBBB" and meta["start_s"] == 2.0 and meta["end_s"] == 12.0
    assert meta["audioset_labels"] == ["/m/04rlf", "/m/05148p4"]
    assert meta["audioset_label_names"] == ["Music", "Musical instrument"]
    assert meta["aspect_list"] == ["chord", "calm"] and meta["author_id"] == 4 and meta["is_audioset_eval"] is True
    assert meta["sample_rate"] == 32000 and meta["num_samples"] == 320000 and meta["duration_s"] == 10.0
    assert meta["source_url"].endswith("/media/goodBBBBBBB.m4a") and meta["fetched_at"].endswith("Z")
    q = meta["quality"]
    assert -30 < q["rms_dbfs"] < 0 and 0 < q["peak"] <= 1 and q["silence_fraction"] == 0 and q["clipping_fraction"] == 0
    for tar in sorted((out / "shards").glob("*.tar")):
        for key, members in read_shard(tar).items():
            assert set(members) == {"flac", "json", "txt"} and json.loads(members["json"])["key"] == key
            pcm, sr = sf.read(io.BytesIO(members["flac"]), dtype="int16")
            info = sf.info(io.BytesIO(members["flac"]))
            assert (sr, info.channels, info.subtype, pcm.ndim) == (32000, 1, "PCM_16", 1)
            assert members["txt"].decode() == json.loads(members["json"])["caption"]
            assert np.abs(pcm).max() > 1000
    assert manifest["shards"] == [p.name for p in sorted((out / "shards").glob("*.tar"))]
    assert sorted(p.name for p in (out / "shards").iterdir()) == manifest["shards"]  # nothing but the tars
    stats = json.loads((out / "stats" / "audio-000000.stats.json").read_text())
    assert stats["rows"] == 3 and stats["clips_written"] + stats["failures"] + len(stats["pending"]) == 3
    assert stats["bytes"] == (out / "shards" / "audio-000000.tar").stat().st_size


def test_shards_read_with_webdataset(faulty_run):
    import webdataset as wds

    _, manifest, out = faulty_run
    urls = [str(out / "shards" / n) for n in manifest["shards"]]
    got = {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)}
    samples, _ = read_all(out)
    assert set(got) == set(samples)
    for key, s in got.items():
        assert json.loads(s["json"])["key"] == key
        assert sf.info(io.BytesIO(s["flac"])).samplerate == 32000


def test_same_input_same_bytes_resume_and_retry_failed(media_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    rows = [("goodAAAAAAA", 0, 10), ("f404xxxxxxx", 0, 10), ("goodBBBBBBB", 1, 11), ("goodCCCCCCC", 0, 10)]
    csv = write_csv(tmp_path / "mc.csv", rows)
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404"}) as srv:
        first = run_ingest(config(csv, tmp_path / "a", srv, shard_size=2), BEAM)
        second = run_ingest(config(csv, tmp_path / "b", srv, shard_size=2), BEAM)
        names = first["shards"]
        assert names == second["shards"] == ["audio-000000.tar", "audio-000001.tar"]
        for sub in ("shards", "stats", "samples", "failures"):
            for f in sorted((tmp_path / "a" / sub).iterdir()):
                assert f.read_bytes() == (tmp_path / "b" / sub / f.name).read_bytes(), f.name
        assert json.loads(read_shard(tmp_path / "a" / "shards" / names[0])["goodAAAAAAA_00000000_00010000"]["json"])[
            "fetched_at"] == "2023-11-14T22:13:20Z"

        # resume: everything complete, nothing fetched, nothing rewritten
        srv.reset_counts()
        mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "a" / "shards").iterdir()}
        again = run_ingest(config(csv, tmp_path / "a", srv, shard_size=2), BEAM)
        assert again["run"]["shards_written"] == 0 and sum(srv.requests.values()) == 0
        assert {p: p.stat().st_mtime_ns for p in (tmp_path / "a" / "shards").iterdir()} == mtimes
        assert again["clips_written"] == first["clips_written"] == 3

        # --retry-failed: the source is back; only the failed row is fetched, only its shard rewritten
        srv.set_fault("f404xxxxxxx", None)
        srv.reset_counts()
        retried = run_ingest(config(csv, tmp_path / "a", srv, shard_size=2, retry_failed=True), BEAM)
        assert set(srv.requests) == {"f404xxxxxxx.m4a"}
        assert retried["clips_written"] == 4 and retried["clips_failed"] == 0
        shard0 = read_shard(tmp_path / "a" / "shards" / names[0])
        assert set(shard0) == {"goodAAAAAAA_00000000_00010000", "f404xxxxxxx_00000000_00010000"}
        assert shard0["goodAAAAAAA_00000000_00010000"] == read_shard(tmp_path / "b" / "shards" / names[0])[
            "goodAAAAAAA_00000000_00010000"]
        assert (tmp_path / "a" / "shards" / names[1]).stat().st_mtime_ns == mtimes[tmp_path / "a" / "shards" / names[1]]
        assert (tmp_path / "a" / "failures" / "audio-000000.jsonl").read_bytes() == b""

        # a different plan (--shard-size) redoes the shards and removes the ones it no longer has
        srv.reset_counts()
        regrouped = run_ingest(config(csv, tmp_path / "a", srv, shard_size=4), BEAM)
        assert regrouped["shards"] == ["audio-000000.tar"] and regrouped["clips_written"] == 4
        assert sorted(p.name for p in (tmp_path / "a" / "shards").iterdir()) == ["audio-000000.tar"]
        assert sorted(p.name for p in (tmp_path / "a" / "stats").iterdir()) == ["audio-000000.stats.json"]
        assert sorted(p.name for p in (tmp_path / "a" / "samples").iterdir()) == ["audio-000000.parquet"]


def test_limit_takes_the_first_rows(media_dir, tmp_path):  # noqa: F811
    csv = write_csv(tmp_path / "mc.csv", [("goodAAAAAAA", 0, 10), ("bad", 0, 10), ("goodBBBBBBB", 0, 10)])
    with MediaServer(media_dir) as srv:
        m = run_ingest(config(csv, tmp_path / "out", srv, limit=2, sample_rate=16000), BEAM)
    assert (m["rows_in"], m["rows_valid"], m["clips_written"], m["rows_rejected"]) == (2, 1, 1, 1)
    samples, _ = read_all(tmp_path / "out")
    assert [s["sample_rate"] for s in samples.values()] == [16000]


def test_bad_config_is_refused_before_any_work(tmp_path):
    for kw, msg in [({"source_url_template": "http://h/static"}, "ytid"), ({"shard_size": 0}, "shard"),
                    ({"sample_rate": 5}, "sample-rate"), ({"cookies": str(tmp_path / "nope.txt")}, "cookies")]:
        with pytest.raises(ValueError, match=msg):
            run_ingest(IngestConfig(csv=str(tmp_path / "x.csv"), out=str(tmp_path / "o"), **kw))


def test_real_musiccaps_rows(musiccaps_csv, ontology_json, tmp_path):
    """The first rows of the real CSV (ytids starting with '-', real labels), served from loopback."""
    from cadenza.musiccaps import load_musiccaps
    from cadenza.testing.mediaserver import write_media

    first = [c for c in load_musiccaps(musiccaps_csv).clips if c.row <= 3]
    media = tmp_path / "media"
    src = write_media(media, "source00000", max(c.end_s for c in first) + 1, ("webm",))[0]
    for c in first:
        (media / f"{c.ytid}.webm").write_bytes(src.read_bytes())
    with MediaServer(media) as srv:
        m = run_ingest(IngestConfig(csv=str(musiccaps_csv), out=str(tmp_path / "out"), limit=3,
                                    source_url_template=srv.url_template("webm"), ontology=str(ontology_json),
                                    progress=False), BEAM)
    assert (m["rows_in"], m["clips_written"], m["shards"]) == (3, 3, ["audio-000000.tar"])
    samples, failures = read_all(tmp_path / "out")
    assert failures == [] and set(samples) == {c.key for c in first}
    meta = samples[first[0].key]
    assert meta["ytid"] == "-0Gj8-vB1q4" and "Music" in meta["audioset_label_names"]
    assert meta["caption"] == first[0].caption and meta["duration_s"] == 10.0


def test_beam_options_default_to_local_multiprocessing_only_on_the_direct_runner():
    from cadenza.pipelines.beam import pipeline_options

    def beam_options(args, n):
        return pipeline_options(args, parallel_tasks=n)

    def direct(args, n):
        o = beam_options(args, n).get_all_options()
        return o["runner"], o["direct_running_mode"], o["direct_num_workers"]

    assert direct([], 8)[1] == "multi_processing" and direct([], 8)[2] >= 1
    assert direct([], 1)[1] == "in_memory"  # one shard: no worker processes to start
    assert direct(["--direct_running_mode=multi_threading", "--direct_num_workers=3"], 8)[1:] == (
        "multi_threading", 3)
    dataflow = beam_options(["--runner", "DataflowRunner", "--project", "p"], 8).get_all_options()
    assert dataflow["runner"] == "DataflowRunner" and dataflow["direct_running_mode"] == "in_memory"  # untouched
