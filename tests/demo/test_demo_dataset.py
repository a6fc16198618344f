"""The demo dataset is a valid MusicCaps CSV with real media, planted failures, and is reproducible."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pytest

from cadenza.common.ffmpeg import ensure_ffmpeg
from cadenza.demo import dataset as demo_ds
from cadenza.demo.dataset import build_demo_dataset, demo_ytid
from cadenza.musiccaps.csvload import load_musiccaps
from cadenza.musiccaps.ontology import load_ontology
from cadenza.musiccaps.schema import CSV_COLUMNS, YTID_RE

N = 8
SR = 22050  # smaller than the default, to keep the test fast


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "data"
    return build_demo_dataset(root, n_clips=N, seed=0, sample_rate=SR, progress=False)


def _tree(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_csv_validates_and_planted_rows_fail_for_the_right_reasons(built):
    result = load_musiccaps(built.csv_path)
    planted = {p.kind: p for p in built.planted}
    assert len(result.clips) == N + 1  # the missing-media row is valid metadata; it fails at fetch
    assert {c.ytid for c in result.clips} == {c.ytid for c in built.clips} | {planted["missing_media"].ytid}
    assert len(result.rejects) == 2
    by_ytid = {r.ytid: r for r in result.rejects}
    for kind in ("bad_ytid", "empty_window"):
        reject = by_ytid[planted[kind].ytid]
        assert planted[kind].reason in reject.reason, reject
    assert by_ytid[planted["bad_ytid"].ytid].field == "ytid"
    assert by_ytid[planted["empty_window"].ytid].field == "end_s"


def test_csv_has_the_exact_musiccaps_shape(built, musiccaps_csv):
    raw = built.csv_path.read_bytes()
    real_header = musiccaps_csv.read_bytes().split(b"\r\n", 1)[0]
    assert raw.split(b"\r\n", 1)[0] == real_header == ",".join(CSV_COLUMNS).encode()
    assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n") == N + 4  # header + N + 3 planted
    ytids = [line.split(b",", 1)[0] for line in raw.split(b"\r\n")[1:-1]]
    assert ytids == sorted(ytids)  # like the real file
    for clip in load_musiccaps(built.csv_path).clips:
        assert 0 <= clip.start_s <= 10 and clip.end_s - clip.start_s == 10
        assert clip.aspect_list and clip.caption and 0 <= clip.author_id <= 9
        assert "/m/04rlf" in clip.audioset_labels


def test_labels_resolve_in_the_bundled_ontology(built):
    ont = load_ontology(built.ontology_path)
    for clip in load_musiccaps(built.csv_path).clips:
        for mid in clip.audioset_labels:
            assert mid in ont.names, mid


def test_media_files_decode_to_20_seconds_and_planted_ones_are_absent(built):
    ffmpeg = ensure_ffmpeg()
    for clip in built.clips:
        path = built.root / clip.media
        assert path.suffix == ".m4a" and path.is_file()
        pcm = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-"],
                             capture_output=True, check=True).stdout
        x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
        assert abs(len(x) / SR - demo_ds.MEDIA_DURATION_S) < 0.1, clip
        assert np.sqrt(np.mean(x**2)) > 0.02, f"{clip.media} is nearly silent"
    for p in built.planted:
        assert not list(built.media_dir.glob(f"{p.ytid}.*"))
    assert sorted(p.name for p in built.media_dir.iterdir()) == sorted(f"{c.ytid}.m4a" for c in built.clips)


def test_ytids_look_like_youtube_ids_and_depend_on_the_seed():
    ids = {demo_ytid(0, f"clip-{i}") for i in range(500)}
    assert len(ids) == 500 and all(YTID_RE.match(i) for i in ids)
    assert all(i[-1] in "AEIMQUYcgkosw048" for i in ids)  # 64 bits in 11 base64 characters, like YouTube's
    assert demo_ytid(0, "clip-0") == demo_ytid(0, "clip-0") != demo_ytid(1, "clip-0")


def test_second_build_reuses_everything_and_repairs_what_changed(built):
    before = _tree(built.root)
    mtimes = {p: p.stat().st_mtime_ns for p in built.root.rglob("*") if p.is_file()}
    again = build_demo_dataset(built.root, n_clips=N, seed=0, sample_rate=SR, progress=False)
    assert again.reused and again.rebuilt == []
    assert {p: p.stat().st_mtime_ns for p in built.root.rglob("*") if p.is_file()} == mtimes

    victim = built.root / built.clips[0].media
    victim.write_bytes(b"truncated")
    (built.media_dir / f"{built.planted[2].ytid}.m4a").write_bytes(b"a file where one must be missing")
    repaired = build_demo_dataset(built.root, n_clips=N, seed=0, sample_rate=SR, progress=False)
    assert repaired.rebuilt == [built.clips[0].media]
    assert _tree(built.root) == before


def test_builds_are_byte_identical_across_directories(built, tmp_path):
    other = build_demo_dataset(tmp_path / "data", n_clips=N, seed=0, sample_rate=SR, progress=False, workers=1)
    assert _tree(other.root) == _tree(built.root)


def test_different_seed_gives_a_different_dataset(tmp_path):
    a = build_demo_dataset(tmp_path / "a", n_clips=2, seed=1, audio_format="wav", sample_rate=8000, progress=False)
    b = build_demo_dataset(tmp_path / "b", n_clips=2, seed=2, audio_format="wav", sample_rate=8000, progress=False)
    assert a.csv_path.read_bytes() != b.csv_path.read_bytes()
    assert {c.ytid for c in a.clips}.isdisjoint({c.ytid for c in b.clips})
    assert a.url_template("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/media/{ytid}.wav"
    assert (a.root / a.clips[0].media).read_bytes()[:4] == b"RIFF"


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="audio_format"):
        build_demo_dataset(tmp_path, audio_format="mp3")
    with pytest.raises(ValueError, match="n_clips"):
        build_demo_dataset(tmp_path, n_clips=0)


def test_media_is_fetchable_by_yt_dlp_over_loopback(built, tmp_path):
    """What ingest will do: yt-dlp's generic extractor cuts the CSV window out of the served file; the planted
    missing-media row is an HTTP 404."""
    import functools
    import http.server
    import threading

    import yt_dlp
    from yt_dlp.utils import DownloadError, download_range_func

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built.root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    template = built.url_template(f"http://127.0.0.1:{server.server_address[1]}")
    clip = built.clips[0]
    opts = {"quiet": True, "no_warnings": True, "outtmpl": str(tmp_path / "%(id)s.%(ext)s"),
            "ffmpeg_location": ensure_ffmpeg(),
            "download_ranges": download_range_func(None, [(clip.start_s, clip.end_s)])}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(template.format(ytid=clip.ytid), download=True)
            assert info["id"] == clip.ytid
            with pytest.raises(DownloadError, match="404"):
                ydl.extract_info(template.format(ytid=built.planted[2].ytid), download=True)
    finally:
        server.shutdown()
        server.server_close()
    got = tmp_path / f"{clip.ytid}.m4a"
    pcm = subprocess.run([ensure_ffmpeg(), "-v", "error", "-i", str(got), "-f", "s16le", "-ac", "1", "-"],
                         capture_output=True, check=True).stdout
    assert abs(len(pcm) / 2 / SR - 10.0) < 0.1  # the 10 s window, not the 20 s file
