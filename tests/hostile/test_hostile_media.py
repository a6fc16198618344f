"""Hostile media through the real ingest (Beam DirectRunner, yt-dlp, PyAV/ffmpeg, loopback MediaServer).

One run over every case (the ingest's cost is per run, not per row), then one assertion per case:
its failure category, or that it landed with the metadata that says what it was. Status faults, a
truncated transfer, HTML instead of media, an oversized body and a dropped connection are already covered
by tests/pipelines/test_ingest_pipeline.py; here are the media themselves. "Long" is 10 minutes
(not 2 hours) to keep the suite fast: the point is that only the window is decoded.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
from ingest_testkit import read_all, read_shard, write_csv  # noqa: E402

from cadenza.pipelines.ingest.run import IngestConfig, run_ingest  # noqa: E402
from cadenza.testing.mediaserver import MediaServer, synth_audio  # noqa: E402

BEAM = ["--direct_running_mode=in_memory"]


def _wav(path: Path, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> None:
    sf.write(path, audio.T, sr, subtype=subtype)


def _good(seconds: float, sr: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    return synth_audio(seconds, sr, seed=seed, channels=channels)


def _nan_wav(path: Path) -> None:
    x = _good(12.0, 22050, 1)
    x[0, 22050 * 3 : 22050 * 3 + 50] = np.nan
    x[0, 22050 * 6] = np.inf
    _wav(path, x, 22050, "FLOAT")


def _png(path: Path) -> None:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = (64).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    raw = b"".join(b"\0" + bytes(64 * 3) for _ in range(64))
    chunks = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def _truncated(path: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, _good(12.0, 22050, 1).T, 22050, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 4])  # the header still promises 12 s; 3 s are there


# ytid -> (writer, (start, end), expected): expected is a failure category, or "ok" plus checks on the sample
CASES = {
    # an empty file cannot satisfy the window's Range request: the server's 416 is the answer
    "zerobytesxx": (lambda p: p.write_bytes(b""), (0, 10), "http_416"),
    "truncatedxx": (_truncated, (0, 10), "too_short"),
    "pngasaudiox": (_png, (0, 10), "decode_error"),
    "tenthsecond": (lambda p: _wav(p, _good(0.1), 44100), (0, 10), "too_short"),
    "nanandinfxx": (_nan_wav, (0, 10), "non_finite_audio"),
    "redirectsxx": (None, (0, 10), "redirect_loop"),
    "tenminutesx": (lambda p: _wav(p, _good(600.0, 8000, 1), 8000), (585, 595), "ok"),
    "eightchanxx": (lambda p: _wav(p, _good(11.0, 22050, 8), 22050), (1, 11), "ok"),
    "hirate192kx": (lambda p: _wav(p, _good(10.5, 192000, 1), 192000), (0, 10), "ok"),
    "silencexxxx": (lambda p: _wav(p, np.zeros((1, 22050 * 11), np.float32), 22050), (0, 10), "ok"),
    "goodwavxxxx": (lambda p: _wav(p, _good(12.0, 22050, 2), 22050), (2, 12), "ok"),
}


@pytest.fixture(scope="module")
def hostile_ingest(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile-media")
    media = d / "media"
    media.mkdir()
    for ytid, (write, _, _) in CASES.items():
        if write is not None:
            write(media / f"{ytid}.wav")
    rows = [(ytid, *window) for ytid, (_, window, _) in CASES.items()]
    csv = write_csv(d / "mc.csv", rows)
    with MediaServer(media, faults={"redirectsxx": "redirect-loop"}) as srv:
        cfg = IngestConfig(csv=str(csv), out=str(d / "out"), source_url_template=srv.url_template("wav"),
                           shard_size=4, max_attempts=2, backoff_base_s=0.01, socket_timeout_s=10,
                           max_filesize_mb=20, progress=False)
        manifest = run_ingest(cfg, BEAM)
    samples, failures = read_all(d / "out")
    return rows, manifest, d / "out", samples, {f["ytid"]: f for f in failures}


def test_every_row_is_accounted_for(hostile_ingest):
    rows, manifest, _, samples, failures = hostile_ingest
    landed = {s["ytid"] for s in samples.values()}
    assert landed | set(failures) == set(CASES) and not landed & set(failures)
    assert manifest["rows_in"] == len(rows)
    assert manifest["clips_written"] + manifest["clips_failed"] == len(rows)
    assert manifest["clips_written"] == sum(1 for *_, e in CASES.values() if e == "ok")


@pytest.mark.parametrize("ytid", [y for y, c in CASES.items() if c[2] != "ok"])
def test_bad_media_get_their_category(hostile_ingest, ytid):
    *_, failures = hostile_ingest
    f = failures[ytid]
    assert f["category"] == CASES[ytid][2], f
    assert f["row"] == list(CASES).index(ytid) + 1 and f["message"]


def test_odd_but_valid_media_land_as_mono_32k(hostile_ingest):
    _, _, out, samples, _ = hostile_ingest
    by_ytid = {s["ytid"]: s for s in samples.values()}
    flacs = {k: m["flac"] for tar in sorted((out / "shards").glob("*.tar")) for k, m in read_shard(tar).items()}
    for ytid, (_, (start, end), expected) in CASES.items():
        if expected != "ok":
            continue
        meta = by_ytid[ytid]
        pcm, sr = sf.read(io.BytesIO(flacs[meta["key"]]), dtype="int16")
        assert sr == 32000 and pcm.ndim == 1 and len(pcm) == meta["num_samples"]
        assert abs(len(pcm) / sr - (end - start)) < 0.05, ytid
    assert by_ytid["silencexxxx"]["quality"]["silence_fraction"] == 1.0
    assert by_ytid["silencexxxx"]["quality"]["rms_dbfs"] == -120.0
    assert by_ytid["hirate192kx"]["source_sample_rate"] == 192000
    assert by_ytid["eightchanxx"]["quality"]["silence_fraction"] < 0.1
    assert by_ytid["tenminutesx"]["quality"]["rms_dbfs"] > -30
    json.dumps(by_ytid)  # every metadata value is plain JSON (no NaN/inf slipped in)
