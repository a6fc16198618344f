"""Fetching one clip with real yt-dlp and ffmpeg over loopback: formats, ranges, every fault."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from ingest_testkit import FAULTS, GOOD, RETRY_OK, SESSION_FAULTS, media_dir, server_faults  # noqa: F401 (fixture)

from cadenza.musiccaps.schema import ClipRecord
from cadenza.pipelines.ingest import audio
from cadenza.pipelines.ingest.clipjob import ClipJobConfig, process_clip
from cadenza.pipelines.ingest.fetch import Fetcher, FetchError, FetchOptions, build_url, with_retries
from cadenza.testing.mediaserver import MediaServer, synth_audio


def clip(ytid: str, start: float = 2.0, end: float = 7.0, row: int = 1) -> ClipRecord:
    return ClipRecord(ytid, start, end, ("/m/04rlf",), ("calm",), "a caption", 1, False, False, row=row)


def job(srv: MediaServer, ext: str = "m4a", **kw) -> ClipJobConfig:
    fetch = FetchOptions(socket_timeout_s=5, max_filesize_bytes=kw.pop("cap", 20 * 1024 * 1024))
    return ClipJobConfig(srv.url_template(ext), sample_rate=16000, fetch=fetch, max_attempts=3,
                         backoff_base_s=0.01, **kw)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def test_build_url_checks_the_ytid_and_template():
    assert build_url("https://www.youtube.com/watch?v={ytid}", "-0Gj8-vB1q4").endswith("v=-0Gj8-vB1q4")
    for bad in ("short", "x" * 12, "../../etc/pw", "a b c d e f"):
        with pytest.raises(FetchError) as e:
            build_url("https://h/{ytid}", bad)
        assert e.value.category == "invalid_ytid"
    for template in ("https://h/static", "file:///tmp/{ytid}", "ftp://h/{ytid}"):
        with pytest.raises(ValueError):
            build_url(template, "-0Gj8-vB1q4")


@pytest.mark.parametrize("ext", ["wav", "m4a", "webm"])
@pytest.mark.parametrize("range_support", [True, False])
def test_clip_matches_the_source_window(media_dir, ext, range_support):  # noqa: F811
    """Ranged or whole-file, every format gives the right 5 s of audio at the target rate."""
    with MediaServer(media_dir, range_support=range_support) as srv:
        res = process_clip(clip("goodAAAAAAA", 3.0, 8.0), job(srv, ext), label_names=["Music"])
    assert res.failure is None, res.failure
    pcm, sr = audio.decode_flac(res.sample["flac"])
    meta = json.loads(res.sample["json"])
    assert sr == 16000 and meta["num_samples"] == len(pcm)
    assert abs(len(pcm) / sr - 5.0) < 0.05
    src_sr = 44100
    ref = audio.resample(audio.to_mono(synth_audio(20.0, src_sr, seed=GOOD["goodAAAAAAA"][1])), src_sr, 16000)
    ref = ref[round(3.0 * 16000) : round(8.0 * 16000)]
    # lossy codecs and packet-level range cuts shift a little: best correlation within +-50 ms
    x = pcm.astype(np.float32) / 32768
    best = max(correlation(x[max(0, s):], ref[max(0, -s):]) for s in range(-800, 801, 20))
    assert best > 0.9, best
    assert meta["audioset_label_names"] == ["Music"] and meta["key"] == "goodAAAAAAA_00003000_00008000"
    assert meta["fetch_mode"] in ("range", "whole") and set(meta["quality"]) == {
        "duration_s", "rms_dbfs", "peak", "silence_fraction", "clipping_fraction"}
    if not range_support and ext == "m4a":
        # the known trap: a range download of m4a without Range support is not usable audio
        assert meta["fetch_mode"] == "whole"


def test_window_past_the_end_is_too_short(media_dir):  # noqa: F811
    with MediaServer(media_dir) as srv:
        res = process_clip(clip("goodCCCCCCC", 8.0, 18.0, row=9), job(srv))
    f = res.failure
    assert res.sample is None and (f.stage, f.category, f.row, f.attempts) == ("clip", "too_short", 9, 1)


@pytest.mark.parametrize("ytid", sorted(FAULTS))
def test_faults_get_their_category(media_dir, ytid):  # noqa: F811
    fault, category = FAULTS[ytid]
    with MediaServer(media_dir, faults=server_faults()) as srv:
        res = process_clip(clip(ytid), job(srv, cap=2 * 1024 * 1024))
    assert res.sample is None
    transient = category in ("server_error", "truncated", "connection")
    if ytid in SESSION_FAULTS:  # the session's fault, not the clip's: pending, no failure record
        assert res.failure is None and res.pending == category, res
        assert res.attempts == (3 if transient else 1), res
        return
    f = res.failure
    assert f.category == category, f
    assert f.ytid == ytid and f.key == clip(ytid).key and f.message
    assert f.attempts == 1 and f.extra["transient"] is False, f


def test_429_is_retried_and_lands(media_dir):  # noqa: F811
    with MediaServer(media_dir, faults=server_faults()) as srv:
        res = process_clip(clip(RETRY_OK), job(srv))
        assert res.failure is None and res.attempts == 2
        assert srv.requests[f"{RETRY_OK}.m4a"] >= 2


def test_fetcher_writes_only_into_its_directory(media_dir, tmp_path):  # noqa: F811
    with MediaServer(media_dir) as srv, Fetcher(FetchOptions(), tmp_path / "dl") as fetcher:
        first = fetcher.download(srv.url_template("wav").format(ytid="goodBBBBBBB"))
        assert first.parent.parent == tmp_path / "dl" and first.name == "media.wav"
        # the same thread reuses its yt-dlp instance and directory: one file at a time
        second = fetcher.download(srv.url_template("m4a").format(ytid="goodBBBBBBB"), window=(1.0, 3.0))
        assert second.parent == first.parent
        assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["media.m4a"]
    assert not (tmp_path / "dl").exists()


def test_with_retries_backs_off_then_gives_up():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise FetchError("rate_limited", "429", transient=True)
        return "ok"

    assert with_retries(flaky, max_attempts=5, backoff_base_s=1.0, rng=random.Random(0), sleep=sleeps.append) == (
        "ok", 3)
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0

    def broken():
        raise FetchError("server_error", "500", transient=True)

    with pytest.raises(FetchError) as e:
        with_retries(broken, max_attempts=4, backoff_base_s=0.0, sleep=sleeps.append)
    assert e.value.attempts == 4

    def gone():
        calls.append(1)
        raise FetchError("gone", "410")

    calls.clear()
    with pytest.raises(FetchError):
        with_retries(gone, max_attempts=4, backoff_base_s=0.0, sleep=sleeps.append)
    assert len(calls) == 1  # permanent: never retried


def test_window_download_refuses_a_server_without_ranges(media_dir, tmp_path):  # noqa: F811
    """Without Range support ffmpeg's seek silently returns the wrong part of a wav (or a near-empty
    m4a), so a window download must check first; process_clip then fetches the whole file."""
    with MediaServer(media_dir, range_support=False) as srv:
        with pytest.raises(FetchError) as e, Fetcher(FetchOptions(), tmp_path) as fetcher:
            fetcher.download(srv.url_template("wav").format(ytid="goodBBBBBBB"), window=(1.0, 4.0))
    assert e.value.category == "no_range_support" and not e.value.transient


def test_politeness_and_cookies_reach_yt_dlp(tmp_path):
    from cadenza.pipelines.ingest.fetch import Pacer, _Log, ydl_options

    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    o = ydl_options(tmp_path, FetchOptions(cookies=str(cookies), sleep_requests=1.5), _Log())
    assert o["cookiefile"] == str(cookies) and o["sleep_interval_requests"] == 1.5
    assert o["noplaylist"] and o["postprocessors"] == [] and o["allowed_extractors"] == ["youtube", "generic"]
    assert "exec" not in str(o) and o["paths"] == {"home": str(tmp_path), "temp": str(tmp_path)}
    # fetch starts through one Pacer are at least its interval apart, whatever the threads do
    import threading
    import time

    pacer, starts, t0 = Pacer(0.05), [], time.monotonic()
    threads = [threading.Thread(target=lambda: (pacer.wait(), starts.append(time.monotonic()))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the k-th start cannot come before the k-th slot, however late the threads wake up
    assert all(s >= t0 + k * 0.05 - 1e-3 for k, s in enumerate(sorted(starts)))
