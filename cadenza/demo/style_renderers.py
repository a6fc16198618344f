"""The demo's seven styles, one renderer each: (seeded Generator, duration in s, sample rate) -> mono buffer.

Each differs from the others in timbre (plucked strings, pulse waves, organ and strings, saw bass and drum
machine, inharmonic metallophones, formant voices, bells and hand drums), rhythm, tempo and tuning (equal
temperament, just intonation, slendro). Every random choice comes from the Generator it is given.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cadenza.demo.synth_blocks import (
    Array,
    Mix,
    NoteCache,
    band,
    envelope,
    fft_size,
    harmonic_tone,
    midi_hz,
    noise_burst,
    partials,
    pulse,
    reverb,
    saw,
    wavetable,
)


def hindustani(rng: np.random.Generator, dur: float, sr: int) -> Array:
    """Plucked-string pentatonic melody over a tanpura-like drone, tabla theka at about 100 BPM."""
    bpm = 100 * rng.uniform(0.97, 1.03)
    beat = 60 / bpm
    sa = 130.81 * 2 ** (rng.integers(0, 5) / 12)  # C3..E3
    scale = [1, 9 / 8, 5 / 4, 3 / 2, 5 / 3]  # Bhupali: sa re ga pa dha
    mix, cache = Mix(dur, sr), NoteCache()

    def pluck(f: float) -> Array:
        k = np.arange(1, 30)
        amps = np.abs(np.sin(np.pi * k * 0.13)) / k * (1 + 0.6 * (k > 8))  # bright "jawari" buzz
        return partials(f * k * (1 + 0.0004 * k), amps, 1.6 / (1 + 0.12 * k), 1.8, sr)

    def drone(f: float) -> Array:
        k = np.arange(1, 16)
        return partials(f * k, 1 / k**0.7, np.full(15, 2.5), 3.0, sr, attack_s=0.05)

    for t in np.arange(0, dur, beat * 2):  # tanpura: pa sa' sa' sa, one string per two beats
        f = sa / 2 * [3 / 2, 2, 2, 1][int(round(t / (beat * 2))) % 4]
        mix.add(t, cache.get(drone, f), 0.12)

    degree, t = int(rng.integers(0, 5)), 0.0
    while t < dur:
        degree = int(np.clip(degree + rng.choice([-2, -1, 1, 1, 2]), 0, 9))
        f = sa * 2 * scale[degree % 5] * 2 ** (degree // 5)
        mix.add(t, cache.get(pluck, f), 0.5 * rng.uniform(0.8, 1.0))
        t += beat * rng.choice([0.5, 0.5, 1.0, 1.5])

    na = partials(sa * 2 * np.arange(1, 6), [1, 0.6, 0.4, 0.25, 0.1], [0.12, 0.08, 0.05, 0.04, 0.03], 0.4, sr)
    tin = partials(sa * 2 * np.arange(1, 6), [1, 0.3, 0.5, 0.2, 0.1], [0.35, 0.2, 0.1, 0.06, 0.04], 0.8, sr)
    n_ge = int(0.6 * sr)
    ge_f = 80 * (1 + 0.25 * np.minimum(1, np.arange(n_ge) / (0.15 * sr)))  # bayan's rising gamak
    ge = harmonic_tone(ge_f, np.array([1.0, 0.2]), 0.6, sr) * np.exp(-np.arange(n_ge) / sr / 0.25)
    strokes = {"dha": (na, ge), "dhin": (tin, ge), "ta": (na,), "tin": (tin,)}
    teentaal = ("dha dhin dhin dha " * 2 + "dha tin tin ta ta dhin dhin dha").split()
    for i, t in enumerate(np.arange(0, dur, beat)):
        for part in strokes[teentaal[i % 16]]:
            mix.add(t + rng.normal(0, 0.006), part, 0.45 * rng.uniform(0.75, 1.0))
    return mix.buf


def chiptune(rng: np.random.Generator, dur: float, sr: int) -> Array:
    """Pulse-wave lead and arpeggios, stepped triangle bass and noise drums at about 140 BPM."""
    bpm = 140 * rng.uniform(0.97, 1.03)
    six = 60 / bpm / 4
    root = 60 + int(rng.integers(-3, 4))
    chords = [[0, 4, 7], [7, 11, 14], [9, 12, 16], [5, 9, 12]]  # I V vi IV
    mix, cache = Mix(dur, sr), NoteCache()

    def square(m: float, duty: float, length: float) -> Array:
        n = int(length * sr)
        return pulse(np.arange(n) * midi_hz(m) / sr, duty) * envelope(n, sr, 0.002, 0.01)

    def tri(m: float, length: float) -> Array:
        ph = (np.arange(int(length * sr)) * midi_hz(m) / sr) % 1.0
        return np.round(8 * (2 * np.abs(2 * ph - 1) - 1)) / 8  # 4-bit staircase like a NES channel

    lfsr = np.repeat(rng.choice([-1.0, 1.0], int(dur * 8000) + 1), int(np.ceil(sr / 8000)))
    melody_deg = 0
    for i, t in enumerate(np.arange(0, dur, six)):
        chord = chords[(i // 16) % 4]
        arp = root + 12 + chord[i % 3]
        mix.add(t, cache.get(square, arp, 0.25, six), 0.10)
        if i % 2 == 0:
            melody_deg = int(np.clip(melody_deg + rng.choice([-2, -1, 0, 1, 2]), -3, 9))
            m = root + 12 + [0, 2, 4, 5, 7, 9, 11][melody_deg % 7] + 12 * (melody_deg // 7)
            if rng.random() < 0.8:
                mix.add(t, cache.get(square, m, 0.5, 2 * six * 0.9), 0.16)
        if i % 4 == 0:
            b = root - 24 + chord[0] + (12 if (i // 4) % 2 else 0)
            mix.add(t, cache.get(tri, b, 4 * six * 0.95), 0.3)
        n = int(six * sr)
        if i % 8 == 4:
            mix.add(t, lfsr[:n] * np.exp(-np.arange(n) / sr / 0.06), 0.25)  # snare
        elif i % 2 == 1:
            mix.add(t, lfsr[n : 2 * n] * np.exp(-np.arange(n) / sr / 0.012), 0.12)  # hat
        if i % 8 == 0:
            kick_f = 120 * np.exp(-np.arange(n) / sr / 0.03) + 40
            mix.add(t, pulse(np.cumsum(kick_f) / sr, 0.5) * np.exp(-np.arange(n) / sr / 0.05), 0.3)
    return mix.buf


def pad(rng: np.random.Generator, dur: float, sr: int) -> Array:
    """Sustained organ and string chords in just intonation, slow changes, no percussion."""
    root = 110.0 * 2 ** (rng.integers(0, 7) / 12)
    chords = [[1, 5 / 4, 3 / 2, 2], [4 / 3, 5 / 3, 2, 8 / 3], [5 / 3, 2, 5 / 2, 10 / 3], [3 / 2, 15 / 8, 9 / 4, 3]]
    order = rng.permutation(4)
    chord_s = 4.0 * rng.uniform(0.9, 1.1)
    organ = rng.uniform(0.3, 0.7)  # blend between drawbar organ and bowed strings
    drawbars = np.array([1.0, 0.7, 0.5, 0.5, 0, 0.3, 0, 0.25])
    mix = Mix(dur, sr)
    for c, t in enumerate(np.arange(-0.5, dur, chord_s)):
        length = chord_s + 1.5
        n = int(length * sr)
        env = envelope(n, sr, 0.9, 1.4)
        for ratio in chords[order[c % 4]]:
            f = root * ratio
            vib = f * (1 + 0.003 * np.sin(2 * np.pi * rng.uniform(4.5, 5.5) * np.arange(n) / sr))
            phase = np.cumsum(vib) / sr
            voice = organ * wavetable(np.arange(n) * f / sr, drawbars)
            for detune in (-0.004, 0.0, 0.004):  # a section of bowed strings: detuned saws
                voice += (1 - organ) / 3 * 0.6 * saw(phase * (1 + detune) + rng.random())
            mix.add(t, voice * env, 0.18)
    return reverb(band(mix.buf, sr, hi=3500), sr, rng, rt60_s=2.2, wet=0.35)


def house(rng: np.random.Generator, dur: float, sr: int) -> Array:
    """Four-on-the-floor kick, claps, hats and a detuned saw bass at about 124 BPM."""
    bpm = 124 * rng.uniform(0.98, 1.02)
    beat = 60 / bpm
    root = 36 + int(rng.integers(0, 7))
    mix, bass = Mix(dur, sr), Mix(dur, sr)
    nk = int(0.35 * sr)
    kick_f = 45 + 110 * np.exp(-np.arange(nk) / sr / 0.04)
    kick = np.sin(2 * np.pi * np.cumsum(kick_f) / sr) * np.exp(-np.arange(nk) / sr / 0.18)
    clap = np.sum([np.roll(noise_burst(rng, 0.25, 0.05, sr, 900, 3000), int(d * sr)) for d in (0, 0.011, 0.023)],
                  axis=0)  # a clap is a few bursts a few ms apart
    hat = noise_burst(rng, 0.1, 0.03, sr, lo=7000)
    open_hat = noise_burst(rng, 0.25, 0.12, sr, lo=6000)
    riff = [0, 0, 12, 0, 10, 0, 7, 3]
    cache = NoteCache()

    def saw_note(m: int, length: float) -> Array:
        n = int(length * sr)
        ph = np.arange(n) * midi_hz(m) / sr
        x = saw(ph * 2 ** (12 / 1200)) + saw(ph * 2 ** (-12 / 1200)) + 0.5 * saw(ph / 2)
        return band(x * envelope(n, sr, 0.003, 0.03), sr, hi=700 + 300 * (m - root))

    ducking = np.ones(len(mix.buf))
    for b, t in enumerate(np.arange(0, dur, beat)):
        mix.add(t, kick, 0.9)
        i0 = int(t * sr)
        duck = 1 - 0.7 * np.exp(-np.arange(int(beat * sr)) / sr / 0.08)
        ducking[i0 : i0 + len(duck)] = duck[: len(ducking) - i0]
        if b % 2 == 1:
            mix.add(t, clap, 0.35)
        mix.add(t + beat / 2, open_hat, 0.12)
        for s in (0.25, 0.75):
            mix.add(t + beat * s + rng.normal(0, 0.003), hat, 0.06)
        for h in range(2):
            m = root + riff[(2 * b + h) % 8]
            bass.add(t + h * beat / 2, cache.get(saw_note, m, beat / 2 * 0.85), 0.22)
    return mix.buf + bass.buf * ducking


def gamelan(rng: np.random.Generator, dur: float, sr: int) -> Array:
    """Inharmonic metallophones in slendro tuning with paired-detuned shimmer, kenong and gong."""
    bpm = 76 * rng.uniform(0.95, 1.05)
    beat = 60 / bpm
    steps = np.cumsum([0, 231, 242, 253, 222])  # slendro: five near-equal steps to the octave
    base = 250 * 2 ** (rng.uniform(-0.15, 0.15))
    tuning = base * 2 ** (steps / 1200)
    bar_ratios, bar_amps = np.array([1, 2.76, 5.40, 8.93]), np.array([1, 0.45, 0.2, 0.1])
    mix, cache = Mix(dur, sr), NoteCache()

    def bar(f: float, decay: float) -> Array:
        # the two instruments of a pair are tuned ~6 Hz apart: the beating ("ombak") is the shimmer
        decays = decay / np.arange(1, 5)
        return partials(f * bar_ratios, bar_amps, decays, decay * 2, sr) + partials(
            (f + 6) * bar_ratios, bar_amps, decays, decay * 2, sr)

    kenong = partials(tuning[0] * np.array([1, 2.4, 3.9]), [1, 0.3, 0.1], [1.5, 0.6, 0.3], 3, sr)
    n_gong = int(7 * sr)
    beating = 1 + 0.4 * np.sin(2 * np.pi * 2.5 * np.arange(n_gong) / sr)
    gong = partials([45, 90.5, 135.8], [1, 0.6, 0.3], [5, 3, 2], 7, sr, attack_s=0.03) * beating
    degree = int(rng.integers(0, 5))
    for i, t in enumerate(np.arange(0, dur, beat)):
        degree = (degree + int(rng.choice([-1, 1, 1, 2]))) % 5
        f = tuning[degree]
        mix.add(t, cache.get(bar, f, 1.2), 0.3)
        for j, off in enumerate((0.0, 0.25, 0.5, 0.75)):  # bonang-like elaboration, interlocking
            f2 = 2 * tuning[(degree + (j % 2) * 2 + (j // 2)) % 5]
            mix.add(t + off * beat, cache.get(bar, f2, 0.35), 0.12)
        if i % 4 == 3:
            mix.add(t, kenong, 0.25)
        if i % 16 == 15 or i == 0:
            mix.add(t, gong, 0.5)
    return reverb(mix.buf, sr, rng, rt60_s=1.8, wet=0.3)


VOWELS = {  # F1, F2, F3 (Hz), bandwidths widen with frequency
    "a": (800, 1150, 2900), "e": (400, 2100, 2800), "i": (300, 2300, 3000),
    "o": (450, 800, 2830), "u": (325, 700, 2530),
}


def acappella(rng: np.random.Generator, dur: float, sr: int) -> Array:
    """Two formant-synthesised voices singing a diatonic line in thirds, with vibrato and breaths."""
    bpm = 84 * rng.uniform(0.95, 1.05)
    beat = 60 / bpm
    female = bool(rng.random() < 0.5)
    root = (57 if female else 45) + int(rng.integers(0, 5))
    major = [0, 2, 4, 5, 7, 9, 11]
    mix = Mix(dur, sr)

    def sing(m: float, vowel: str, length: float) -> Array:
        # source-filter: a glottal-like sawtooth with vibrato, shaped by the vowel's formant resonances
        n = int(length * sr)
        vib = 1 + 0.012 * np.sin(2 * np.pi * 5.5 * np.arange(n) / sr) * np.minimum(1, np.arange(n) / (0.3 * sr))
        source = saw(np.cumsum(midi_hz(m) * vib) / sr) + 0.05 * rng.standard_normal(n)
        size = fft_size(n)
        f = np.fft.rfftfreq(size, 1 / sr)
        formants = np.array(VOWELS[vowel]) * (1.15 if female else 1.0)
        gain = sum(g / (1 + ((f - F) / (B / 2)) ** 2)
                   for F, B, g in zip(formants, (80, 100, 150), (1.0, 0.7, 0.35), strict=True))
        voice = np.fft.irfft(np.fft.rfft(source, size) * gain, n=size)[:n]
        return voice / (np.abs(voice).max() + 1e-9) * envelope(n, sr, 0.08, 0.15)

    degree, t = 2, 0.0
    while t < dur:
        length = beat * float(rng.choice([1, 1, 2, 2, 3]))
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2]), 0, 9))
        vowel = str(rng.choice(list(VOWELS)))
        lead = root + major[degree % 7] + 12 * (degree // 7)
        third = root + major[(degree + 2) % 7] + 12 * ((degree + 2) // 7)
        mix.add(t, sing(lead, vowel, length * 1.02), 0.35)
        mix.add(t + 0.02, sing(third, vowel, length * 1.02), 0.22)
        t += length + (beat * 0.5 if rng.random() < 0.2 else 0.0)  # a breath now and then
    return reverb(mix.buf, sr, rng, rt60_s=1.6, wet=0.3)


def west_african(rng: np.random.Generator, dur: float, sr: int) -> Array:
    """12/8 bell timeline, shaker and hand drums with a balafon line in three against two."""
    bpm = 112 * rng.uniform(0.97, 1.03)  # dotted-quarter beats
    pulse_s = 60 / bpm / 3
    bell_f = 820 * rng.uniform(0.95, 1.05)
    bell = partials(bell_f * np.array([1, 2.09, 3.87, 5.32]), [1, 0.6, 0.35, 0.2], [0.25, 0.12, 0.07, 0.05], 0.6, sr)
    shaker = noise_burst(rng, 0.08, 0.025, sr, lo=5000)
    bass = partials([70, 112], [1, 0.4], [0.25, 0.15], 0.6, sr) + 0.2 * noise_burst(rng, 0.6, 0.02, sr, hi=800)
    tone = partials([310, 520, 740], [1, 0.5, 0.25], [0.12, 0.08, 0.05], 0.4, sr)
    slap = noise_burst(rng, 0.2, 0.04, sr, 1500, 6000) + 0.5 * partials([480], [1], [0.05], 0.2, sr)
    timeline = "x.x.xx.x.x.x"  # the standard 7-stroke bell pattern over 12 pulses
    drum = {0: bass, 3: tone, 5: slap, 6: bass, 8: tone, 9: slap, 11: tone}
    scale = 220 * 2 ** (rng.integers(0, 4) / 12) * np.array([1, 9 / 8, 5 / 4, 3 / 2, 5 / 3, 2, 9 / 4, 5 / 2])
    mix, cache = Mix(dur, sr), NoteCache()

    def balafon(f: float) -> Array:
        return partials(f * np.array([1, 3.93, 9.2]), [1, 0.35, 0.12], [0.35, 0.1, 0.04], 0.9, sr)

    degree = 3
    for i, t in enumerate(np.arange(0, dur, pulse_s)):
        p = i % 12
        if timeline[p] == "x":
            mix.add(t, bell, 0.22)
        mix.add(t + rng.normal(0, 0.004), shaker, 0.08 if p % 3 else 0.13)
        if p in drum:
            mix.add(t + rng.normal(0, 0.005), drum[p], 0.4)
        if p % 2 == 0 and rng.random() < 0.85:  # balafon on every other pulse: 6 notes against 4 beats
            degree = int(np.clip(degree + rng.choice([-2, -1, 1, 2]), 0, 7))
            f = float(scale[degree])
            mix.add(t, cache.get(balafon, f), 0.3)
    return mix.buf


RENDERERS: dict[str, Callable[[np.random.Generator, float, int], Array]] = {
    "hindustani": hindustani,
    "chiptune": chiptune,
    "pad": pad,
    "house": house,
    "gamelan": gamelan,
    "acappella": acappella,
    "west_african": west_african,
}
