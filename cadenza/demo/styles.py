"""MusicCaps-like metadata for each synthesised demo style: labels, aspects, captions, annotators.

Labels are real AudioSet MIDs (checked against the ontology by the tests), never blacklisted ones.
Captions follow the shape of MusicCaps captions ("The low quality recording features ..."), with slots
filled from the piece's seeded choices, so the text model and the audit see varied, plausible text.
The share of each style in the demo is deliberately uneven, as the real dataset's is, so the audit
has an imbalance to report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MUSIC = "/m/04rlf"

# name -> MID, as in the AudioSet ontology
LABELS: dict[str, str] = {
    "Music": MUSIC,
    "Music of Asia": "/m/028sqc",
    "Sitar": "/m/0jtg0",
    "Tabla": "/m/01p970",
    "Plucked string instrument": "/m/0fx80y",
    "Video game music": "/m/01z7dr",
    "Electronic music": "/m/02lkt",
    "Synthesizer": "/m/0l14qv",
    "Ambient music": "/m/0fd3y",
    "New-age music": "/m/02v2lh",
    "Organ": "/m/013y1f",
    "String section": "/m/02qmj0d",
    "House music": "/m/03mb9",
    "Electronic dance music": "/m/08cyft",
    "Drum machine": "/m/0cfdd",
    "Bass drum": "/m/0bm02",
    "Traditional music": "/m/02p0sh1",
    "Gong": "/m/0mbct",
    "Mallet percussion": "/m/0j45pbj",
    "Vocal music": "/m/0y4f8",
    "A capella": "/m/0z9c",
    "Singing": "/m/015lz1",
    "Female singing": "/t/dd00004",
    "Male singing": "/t/dd00003",
    "Music of Africa": "/m/0164x2",
    "Drum": "/m/026t6",
    "Percussion": "/m/0l14md",
    "Marimba, xylophone": "/m/0dwsp",
}

# The demo's labels with all their ancestors, as (mid, name, parent mids): enough of the AudioSet
# ontology for the audit to run offline. Every relation is checked against the real ontology by the tests.
ONTOLOGY_SUBSET: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/m/04rlf", "Music", ()),
    ("/m/0kpv1t", "Music genre", ("/m/04rlf",)),
    ("/m/04szw", "Musical instrument", ("/m/04rlf",)),
    ("/t/dd00028", "Music role", ("/m/04rlf",)),
    ("/m/0dgw9r", "Human sounds", ()),
    ("/m/09l8g", "Human voice", ("/m/0dgw9r",)),
    ("/m/015lz1", "Singing", ("/m/09l8g",)),
    ("/t/dd00004", "Female singing", ("/m/015lz1",)),
    ("/t/dd00003", "Male singing", ("/m/015lz1",)),
    ("/m/02lkt", "Electronic music", ("/m/0kpv1t",)),
    ("/m/0fd3y", "Ambient music", ("/m/02lkt",)),
    ("/m/08cyft", "Electronic dance music", ("/m/02lkt",)),
    ("/m/03mb9", "House music", ("/m/02lkt",)),
    ("/m/0164x2", "Music of Africa", ("/m/0kpv1t",)),
    ("/m/028sqc", "Music of Asia", ("/m/0kpv1t",)),
    ("/m/02v2lh", "New-age music", ("/m/0kpv1t",)),
    ("/m/02p0sh1", "Traditional music", ("/m/0kpv1t",)),
    ("/m/0y4f8", "Vocal music", ("/m/0kpv1t",)),
    ("/m/0z9c", "A capella", ("/m/0y4f8",)),
    ("/m/01z7dr", "Video game music", ("/t/dd00028",)),
    ("/m/0l14md", "Percussion", ("/m/04szw",)),
    ("/m/026t6", "Drum", ("/m/0l14md",)),
    ("/m/0bm02", "Bass drum", ("/m/026t6",)),
    ("/m/01p970", "Tabla", ("/m/026t6",)),
    ("/m/02hnl", "Drum kit", ("/m/0l14md",)),
    ("/m/0cfdd", "Drum machine", ("/m/02hnl",)),
    ("/m/0mbct", "Gong", ("/m/0l14md",)),
    ("/m/0j45pbj", "Mallet percussion", ("/m/0l14md",)),
    ("/m/0dwsp", "Marimba, xylophone", ("/m/0j45pbj",)),
    ("/m/0fx80y", "Plucked string instrument", ("/m/04szw",)),
    ("/m/0jtg0", "Sitar", ("/m/0fx80y",)),
    ("/m/0l14_3", "Bowed string instrument", ("/m/04szw",)),
    ("/m/02qmj0d", "String section", ("/m/0l14_3",)),
    ("/m/05148p4", "Keyboard (musical)", ("/m/04szw",)),
    ("/m/013y1f", "Organ", ("/m/05148p4",)),
    ("/m/0l14qv", "Synthesizer", ("/m/05148p4",)),
)


def ontology_subset_json() -> list[dict]:
    """ONTOLOGY_SUBSET in the AudioSet ontology.json format (loadable by cadenza.musiccaps.ontology)."""
    children: dict[str, list[str]] = {mid: [] for mid, _, _ in ONTOLOGY_SUBSET}
    for mid, _, parents in ONTOLOGY_SUBSET:
        for p in parents:
            children[p].append(mid)
    return [{"id": mid, "name": name, "description": "", "citation_uri": "", "positive_examples": [],
             "child_ids": children[mid], "restrictions": []} for mid, name, _ in ONTOLOGY_SUBSET]


# Annotator ids 0-9 with MusicCaps' own uneven shares (clips per author_id in musiccaps-public.csv).
AUTHOR_WEIGHTS = np.array([554, 489, 112, 301, 1383, 33, 895, 708, 180, 866], dtype=np.float64)


@dataclass(frozen=True)
class Style:
    name: str  # key into cadenza.demo.style_renderers.RENDERERS
    title: str
    share: float  # relative number of clips in the demo
    labels: tuple[str, ...]  # label names (keys of LABELS)
    aspects: tuple[str, ...]  # always listed
    optional_aspects: tuple[str, ...]  # some of these, chosen per clip
    captions: tuple[str, ...]  # templates with {quality} {tempo} {mood} {place}
    moods: tuple[str, ...]
    places: tuple[str, ...]
    tempo: str

    @property
    def mids(self) -> tuple[str, ...]:
        return tuple(sorted(LABELS[name] for name in self.labels))


STYLES: dict[str, Style] = {s.name: s for s in (
    Style(
        "house", "four-on-the-floor house", 8.0,
        ("Music", "Electronic music", "House music", "Electronic dance music", "Drum machine", "Bass drum",
         "Synthesizer"),
        ("house", "four on the floor kick", "detuned synth bass", "electronic"),
        ("claps", "open hi-hats", "energetic", "danceable", "groovy bassline", "instrumental", "no voice"),
        (
            "The {quality} recording features a house song that consists of a punchy four on the floor kick "
            "pattern, claps on the backbeat, shimmering open hi-hats and a groovy detuned synth bass. It sounds "
            "{mood}, like something you would hear {place}.",
            "This is an electronic dance track played at {tempo} tempo. A drum machine plays a steady kick on "
            "every beat while a detuned saw bass pumps underneath. There are no vocals. The mood is {mood}. "
            "This song could be played {place}.",
        ),
        ("energetic", "hypnotic", "uplifting", "groovy"),
        ("in a nightclub", "at a rave", "in a fitness class"), "medium fast",
    ),
    Style(
        "pad", "just-intonation organ and string pad", 7.0,
        ("Music", "Ambient music", "New-age music", "Organ", "String section"),
        ("ambient", "sustained organ chords", "string pad", "no percussion"),
        ("slow", "calming", "meditative", "reverberant", "instrumental", "no voice", "wide"),
        (
            "The {quality} recording features an ambient piece with sustained organ chords and a soft string "
            "pad that slowly change harmony. There is no percussion. It sounds {mood}, like something you "
            "would hear {place}.",
            "This instrumental song features warm, sustained chords played by an organ and bowed strings in "
            "pure just intonation, drenched in reverb. The tempo is {tempo}. The song is {mood} and could be "
            "played {place}.",
        ),
        ("calming", "meditative", "dreamy", "peaceful"),
        ("in a meditation session", "in a planetarium", "during a yoga class"), "very slow",
    ),
    Style(
        "chiptune", "square-wave chiptune", 6.0,
        ("Music", "Video game music", "Electronic music", "Synthesizer"),
        ("chiptune", "8-bit", "square wave lead", "video game music"),
        ("fast arpeggios", "noise drums", "triangle bass", "playful", "retro", "instrumental"),
        (
            "The {quality} recording features a chiptune song with a bright square wave lead melody, fast "
            "arpeggios, a stepped triangle bass and noisy drums. It sounds {mood} and retro, like something "
            "you would hear {place}.",
            "This is 8-bit video game music at a {tempo} tempo. Pulse waves play a catchy melody over rapid "
            "arpeggiated chords while a noise channel keeps the beat. The mood is {mood}. This music could be "
            "heard {place}.",
        ),
        ("playful", "adventurous", "cheerful", "nostalgic"),
        ("in an old platform video game", "on a handheld console", "in a retro arcade"), "fast",
    ),
    Style(
        "acappella", "a cappella duet", 5.0,
        ("Music", "Vocal music", "A capella", "Singing"),
        ("a cappella", "vocal harmony", "no instruments", "vibrato"),
        ("two voices", "sustained vowels", "reverberant", "emotional", "slow melody", "breathy"),
        (
            "The {quality} recording features two voices singing a slow melody in harmony without any "
            "instruments. The {voice} vocals are sustained with vibrato in a reverberant room. It sounds "
            "{mood}, like something you would hear {place}.",
            "This is an a cappella song. A {voice} lead singer and a second voice a third above sing long "
            "vowels at a {tempo} tempo. There are no instruments or percussion. The song is {mood} and could "
            "be sung {place}.",
        ),
        ("emotional", "soothing", "solemn", "tender"),
        ("in a church", "at a choir rehearsal", "in a concert hall"), "slow",
    ),
    Style(
        "hindustani", "plucked strings and tabla", 4.0,
        ("Music", "Music of Asia", "Sitar", "Tabla", "Plucked string instrument"),
        ("sitar-like plucked melody", "tabla", "drone", "pentatonic"),
        ("indian classical music", "teentaal rhythm", "instrumental", "no voice", "buzzing strings"),
        (
            "The {quality} recording features a plucked string instrument playing a pentatonic raga melody "
            "over a constant drone, accompanied by tabla playing a teentaal rhythm. It sounds {mood}, like "
            "something you would hear {place}.",
            "This is an instrumental piece of Indian classical music at a {tempo} tempo. A sitar-like "
            "instrument with buzzing strings improvises over a tanpura drone while tabla keep a sixteen-beat "
            "cycle. The mood is {mood}. This music could be played {place}.",
        ),
        ("meditative", "spiritual", "joyful", "introspective"),
        ("at a classical music concert", "in a temple", "at a cultural festival"), "medium",
    ),
    Style(
        "gamelan", "slendro gamelan", 3.0,
        ("Music", "Music of Asia", "Traditional music", "Gong", "Mallet percussion"),
        ("gamelan", "metallophones", "gong", "slendro tuning"),
        ("interlocking patterns", "shimmering", "traditional", "instrumental", "no voice", "cyclic"),
        (
            "The {quality} recording features a gamelan ensemble: metallophones play an interlocking melody "
            "in slendro tuning while a large gong marks the end of each cycle. The paired instruments shimmer. "
            "It sounds {mood}, like something you would hear {place}.",
            "This is traditional Indonesian music at a {tempo} tempo. Bronze bars and kettle gongs play "
            "cyclic, interlocking patterns with a shimmering, beating tone. The mood is {mood}. This music "
            "could be played {place}.",
        ),
        ("mesmerizing", "ceremonial", "calm", "mysterious"),
        ("at a temple ceremony", "at a shadow puppet performance", "at a traditional festival"), "medium slow",
    ),
    Style(
        "west_african", "West African bell, drums and balafon", 3.0,
        ("Music", "Music of Africa", "Traditional music", "Drum", "Percussion", "Marimba, xylophone"),
        ("african percussion", "bell pattern", "hand drums", "balafon melody"),
        ("12/8 feel", "polyrhythm", "shaker", "lively", "traditional", "instrumental", "no voice"),
        (
            "The {quality} recording features a bell playing a 12/8 timeline pattern, a shaker, hand drums "
            "with bass, tone and slap strokes and a balafon melody in three against two. It sounds {mood}, "
            "like something you would hear {place}.",
            "This is a traditional West African percussion piece at a {tempo} tempo. An iron bell repeats a "
            "seven-stroke pattern while djembe-like drums and a wooden xylophone interlock in polyrhythm. The "
            "mood is {mood}. This music could be played {place}.",
        ),
        ("lively", "joyful", "energetic", "celebratory"),
        ("at a village celebration", "at a dance gathering", "at a wedding"), "medium fast",
    ),
)}

QUALITIES = ("low quality", "amateur", "decent quality", "high quality", "noisy")


@dataclass(frozen=True)
class ClipText:
    caption: str
    aspects: tuple[str, ...]
    mids: tuple[str, ...]
    author_id: int


def describe(style: Style, rng: np.random.Generator) -> ClipText:
    """Caption, aspect list, AudioSet labels and annotator for one clip of `style`."""
    quality = str(rng.choice(QUALITIES))
    mood = str(rng.choice(style.moods))
    voice = str(rng.choice(["female", "male"]))
    caption = str(rng.choice(style.captions)).format(
        quality=quality, tempo=style.tempo, mood=mood, place=str(rng.choice(style.places)), voice=voice)
    k = int(rng.integers(1, min(4, len(style.optional_aspects)) + 1))
    extra = [str(a) for a in rng.choice(style.optional_aspects, size=k, replace=False)]
    aspects = (quality, *style.aspects, *extra, mood)
    mids = style.mids
    if style.name == "acappella":  # voice gender is described, so it is labelled like MusicCaps does
        mids = tuple(sorted((*mids, LABELS["Female singing" if voice == "female" else "Male singing"])))
    author = int(rng.choice(len(AUTHOR_WEIGHTS), p=AUTHOR_WEIGHTS / AUTHOR_WEIGHTS.sum()))
    return ClipText(caption=caption, aspects=tuple(dict.fromkeys(aspects)), mids=mids, author_id=author)


def allocate(n_clips: int) -> list[str]:
    """Style of each clip: counts proportional to `share` (largest remainder), every style at least once
    when there is room, interleaved so that any prefix of the list mixes styles."""
    names = list(STYLES)
    if n_clips < len(names):
        return names[:n_clips]
    shares = np.array([STYLES[n].share for n in names])
    extra = n_clips - len(names)
    raw = shares / shares.sum() * extra
    counts = np.floor(raw).astype(int) + 1
    for i in np.argsort(-(raw - np.floor(raw)), kind="stable")[: n_clips - counts.sum()]:
        counts[i] += 1
    out: list[str] = []
    remaining = counts.copy()
    while remaining.any():
        for i, name in enumerate(names):
            if remaining[i]:
                out.append(name)
                remaining[i] -= 1
    return out
