"""Synthesis is deterministic and the styles are measurably different; their metadata is real AudioSet."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from cadenza.demo import style_renderers, styles, synth
from cadenza.musiccaps.csvload import parse_aspect_list
from cadenza.musiccaps.ontology import load_ontology
from cadenza.musiccaps.schema import MID_RE

SR = 16000
DUR = 8.0
SEEDS = (1, 2, 3)


def features(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """Timbre, rhythm and pitch descriptors: spectral centroid (kHz), onsets per second, spectral flatness,
    energy share below 200 Hz and above 4 kHz, loudness modulation, and the share of the five strongest
    pitch classes (key-invariant: how scale-like the pitch content is)."""
    n_fft, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)) + 1e-9
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    power = mag**2
    centroid = float((mag * freqs).sum() / mag.sum()) / 1000
    flatness = float(np.mean(np.exp(np.log(mag).mean(axis=1)) / mag.mean(axis=1)))
    low = power[:, freqs < 200].sum() / power.sum()
    high = power[:, freqs > 4000].sum() / power.sum()
    rms = np.sqrt(power.sum(axis=1))
    modulation = rms.std() / rms.mean()
    flux = np.maximum(0, np.diff(np.log(mag), axis=0)).mean(axis=1)  # spectral flux (log magnitude)
    local = np.convolve(flux, np.ones(15) / 15, mode="same")
    peaks = (flux[1:-1] > local[1:-1] + 0.1) & (flux[1:-1] >= flux[:-2]) & (flux[1:-1] > flux[2:])
    onset_rate = peaks.sum() / (len(x) / sr)
    band = (freqs > 60) & (freqs < 2000)
    pcs = np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) % 12
    chroma = np.bincount(pcs, weights=power[:, band].sum(axis=0), minlength=12)
    top5 = np.sort(chroma / chroma.sum())[::-1][:5].sum()
    return np.array([centroid, onset_rate, flatness, low, high, modulation, top5])


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[np.ndarray]]:
    return {s: [synth.render(s, seed, DUR, SR) for seed in SEEDS] for s in style_renderers.RENDERERS}


def test_render_is_deterministic_and_seeded(rendered):
    for style, clips in rendered.items():
        again = synth.render(style, SEEDS[0], DUR, SR)
        assert np.array_equal(again, clips[0]), style
        assert not np.array_equal(clips[0], clips[1]), f"{style}: seeds 1 and 2 gave the same audio"
        assert clips[0].dtype == np.float32 and len(clips[0]) == int(DUR * SR)
        assert np.isfinite(clips[0]).all()
        assert np.abs(clips[0]).max() == pytest.approx(10 ** (-1 / 20), rel=1e-3)  # peak -1 dBFS
        assert np.sqrt(np.mean(clips[0] ** 2)) > 0.03, f"{style} is nearly silent"


def test_features_identical_across_runs(rendered):
    for style, clips in rendered.items():
        assert np.array_equal(features(clips[0]), features(synth.render(style, SEEDS[0], DUR, SR))), style


def test_styles_are_distinct(rendered):
    """Leave-one-out nearest-centroid classification on timbre/rhythm/pitch features gets every clip right."""
    names = list(rendered)
    feats = {s: np.array([features(x) for x in clips]) for s, clips in rendered.items()}
    allf = np.concatenate(list(feats.values()))
    mu, sd = allf.mean(axis=0), allf.std(axis=0) + 1e-9
    z = {s: (f - mu) / sd for s, f in feats.items()}
    wrong = []
    for s in names:
        for i in range(len(SEEDS)):
            centroids = {t: np.delete(z[t], i, axis=0).mean(axis=0) if t == s else z[t].mean(axis=0) for t in names}
            guess = min(centroids, key=lambda t: np.linalg.norm(z[s][i] - centroids[t]))
            if guess != s:
                wrong.append((s, SEEDS[i], guess))
    assert not wrong, f"clips closer to another style than to their own: {wrong}"


def test_style_features_match_their_description(rendered):
    mean = {s: np.mean([features(x) for x in clips], axis=0) for s, clips in rendered.items()}
    onset = {s: m[1] for s, m in mean.items()}
    sustained, rhythmic = ("pad", "acappella"), ("hindustani", "chiptune", "house", "gamelan", "west_african")
    assert max(onset[s] for s in sustained) < min(onset[s] for s in rhythmic), onset
    assert onset["pad"] < 0.5, f"the pad has no percussion and changes chord every ~4 s: {onset['pad']}"
    assert onset["chiptune"] > onset["house"], "16th-note arpeggios at 140 BPM beat a 124 BPM groove"
    centroid, low, modulation = ({s: m[i] for s, m in mean.items()} for i in (0, 3, 5))
    assert centroid["chiptune"] == max(centroid.values()), centroid  # bright pulse waves
    assert low["house"] == max(low.values()), low  # kick and saw bass
    assert modulation["pad"] == min(modulation.values()), modulation  # sustained, slowly changing


def test_unknown_style_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown demo style 'polka'"):
        synth.render("polka", 0)


def test_every_style_has_metadata_and_a_renderer():
    assert set(styles.STYLES) == set(style_renderers.RENDERERS)
    for s in styles.STYLES.values():
        assert "Music" in s.labels and len(s.captions) >= 2 and s.share > 0


def test_labels_are_real_audioset_mids(ontology_json):
    ont = load_ontology(ontology_json)
    for name, mid in styles.LABELS.items():
        assert MID_RE.match(mid)
        assert ont.names.get(mid) == name, f"{mid} is {ont.names.get(mid)!r} in the ontology, not {name!r}"
        assert mid not in ont.blacklisted, f"{name} ({mid}) is blacklisted in AudioSet"


def test_ontology_subset_agrees_with_the_real_ontology(ontology_json):
    ont = load_ontology(ontology_json)
    subset = {mid: (name, parents) for mid, name, parents in styles.ONTOLOGY_SUBSET}
    for mid, (name, parents) in subset.items():
        assert ont.names[mid] == name
        assert set(parents) == set(ont.parents.get(mid, ())), f"parents of {name}"
    for mid in styles.LABELS.values():  # every label's ancestors are present, so the subset is closed
        assert set(ont.ancestors(mid)) <= set(subset), mid


def test_describe_fills_captions_and_aspects():
    rng = np.random.default_rng(0)
    for s in styles.STYLES.values():
        for _ in range(5):
            text = styles.describe(s, rng)
            assert "{" not in text.caption and len(text.caption) > 80
            assert parse_aspect_list(str(list(text.aspects))) == text.aspects
            assert list(text.mids) == sorted(text.mids) and styles.MUSIC in text.mids
            assert 0 <= text.author_id <= 9
    if_voice = [styles.describe(styles.STYLES["acappella"], rng) for _ in range(20)]
    for t in if_voice:
        gender = "female" if "female" in t.caption else "male"
        assert styles.LABELS[f"{gender.title()} singing"] in t.mids
    assert not re.search(r"\b(\w+) \1\b", " ".join(t.caption for t in if_voice))


def test_annotators_are_uneven_like_musiccaps():
    rng = np.random.default_rng(0)
    counts = Counter(styles.describe(styles.STYLES["house"], rng).author_id for _ in range(2000))
    assert counts.most_common(1)[0][0] == 4  # MusicCaps' busiest annotator
    assert counts[4] > 10 * counts[5]


@pytest.mark.parametrize("n", [1, 7, 8, 36, 100])
def test_allocate_is_uneven_and_covers_styles(n):
    alloc = styles.allocate(n)
    assert len(alloc) == n
    counts = Counter(alloc)
    if n >= len(styles.STYLES):
        assert set(counts) == set(styles.STYLES)
    if n >= 36:
        assert counts["house"] > counts["gamelan"]
    assert alloc[: min(n, 7)] == list(styles.STYLES)[: min(n, 7)]  # any prefix mixes styles
