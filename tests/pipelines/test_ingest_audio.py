"""Audio steps with real ffmpeg, soxr and libsndfile: decode, clip, mono, resample, stats, FLAC."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from cadenza.common.ffmpeg import ensure_ffmpeg
from cadenza.pipelines.ingest import audio
from cadenza.testing.mediaserver import synth_audio, write_media


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    ensure_ffmpeg()
    d = tmp_path_factory.mktemp("audio")
    return {p.suffix[1:]: p for p in write_media(d, "toneAAAAAAA", 6.0, ("wav", "m4a", "webm"), seed=7)}


@pytest.mark.parametrize("fmt,sr", [("wav", 44100), ("m4a", 44100), ("webm", 48000)])
def test_decode_every_format(files, fmt, sr):
    x, got_sr = audio.decode(files[fmt])
    assert x.dtype == np.float32 and x.shape[0] == 2 and got_sr == sr
    assert abs(x.shape[1] / sr - 6.0) < 0.05
    assert 0.05 < float(np.abs(x).max()) <= 1.0


def test_decode_window_is_accurate_and_may_be_empty(files):
    ref = synth_audio(6.0, 44100, seed=7)
    x, sr = audio.decode(files["wav"], start_s=2.0, duration_s=1.5)
    assert x.shape[1] == round(1.5 * sr)
    np.testing.assert_allclose(x, ref[:, round(2.0 * sr) : round(3.5 * sr)], atol=1e-4)
    past_end, _ = audio.decode(files["wav"], start_s=10.0, duration_s=1.0)
    assert past_end.shape[1] == 0


def test_decode_rejects_non_audio(tmp_path):
    bad = tmp_path / "page.m4a"
    bad.write_text("<html>not audio</html>")
    with pytest.raises(audio.DecodeError, match="page.m4a"):
        audio.decode(bad)


def test_clip_mono_resample():
    sr = 8000
    t = np.arange(3 * sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)]).astype(np.float32)
    clip = audio.clip_window(stereo, sr, 0.5, 2.0)
    assert clip.shape == (2, round(1.5 * sr))
    np.testing.assert_array_equal(clip[0], stereo[0, 4000:16000])
    assert audio.clip_window(stereo, sr, 2.5, 4.0).shape[1] == round(0.5 * sr)  # the file ends first
    mono = audio.to_mono(clip)
    np.testing.assert_allclose(mono, clip[0] / 2, atol=1e-7)
    up = audio.resample(mono, sr, 16000)
    assert len(up) == 2 * len(mono)
    # a 440 Hz tone stays a 440 Hz tone
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(np.argmax(spectrum) * 16000 / len(up) - 440) < 2


def test_quality_stats_known_signals():
    sr = 16000
    half = np.concatenate([np.full(sr, 16384, np.int16), np.zeros(sr, np.int16)])  # 1 s at -6 dBFS, 1 s silence
    q = audio.quality_stats(half, sr)
    assert q.duration_s == 2.0 and q.peak == 0.5
    assert q.silence_fraction == 0.5 and q.clipping_fraction == 0.0
    assert math.isclose(q.rms_dbfs, 20 * math.log10(0.5 / math.sqrt(2)), abs_tol=0.01)
    clipped = np.full(sr, 32767, np.int16)
    assert audio.quality_stats(clipped, sr).clipping_fraction == 1.0
    assert audio.quality_stats(np.zeros(sr, np.int16), sr).rms_dbfs == -120.0


def test_int16_and_flac_round_trip_is_deterministic():
    x = np.array([0.0, 0.5, -0.5, 1.2, -1.2], np.float32)
    pcm = audio.to_int16(x)
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32768]
    sig = audio.to_int16(synth_audio(1.0, 32000, seed=3)[0])
    a, b = audio.encode_flac(sig, 32000), audio.encode_flac(sig, 32000)
    assert a == b and a[:4] == b"fLaC"
    back, sr = audio.decode_flac(a)
    assert sr == 32000 and np.array_equal(back, sig)
    info = sf.info(__import__("io").BytesIO(a))
    assert (info.channels, info.subtype) == (1, "PCM_16")
