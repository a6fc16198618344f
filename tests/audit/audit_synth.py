"""Synthetic MusicCaps-like data with planted (or no) effects, for the audit tests.

The captions name invented places ("alphaland"...) that a small test taxonomy maps to regions, so
every effect the audit reports comes from text the generator wrote on purpose.
"""

from __future__ import annotations

import csv
import random
import string
from pathlib import Path

import yaml

REGIONS = {  # group -> (place word, rollup)
    "north_a": ("alphaland", "global_north"),
    "north_b": ("betaland", "global_north"),
    "south_c": ("gammaland", "global_south"),
    "south_d": ("deltaland", "global_south"),
    "south_e": ("epsilonland", "global_south"),
}
FILLER = "the melody rises over a steady beat while the harmony moves slowly and the mix stays warm".split()


def write_taxonomy(path: Path) -> Path:
    doc = {
        "version": 1,
        "rollup": {"reference_share": {"global_south": 0.83}},
        "negation": ["no", "not", "without"],
        "groupings": {
            "region": {"groups": {g: {"label": f"Region {g}", "rollup": r} for g, (_, r) in REGIONS.items()}},
            "genre": {"groups": {"zydecore": {"label": "Zydecore"}}},
            "instrument": {"groups": {"glassharp": {"label": "Glass harp"}}},
            "language": {"groups": {"klingon": {"label": "Klingon"}}},
            "vocal_gender": {"groups": {"female": {"label": "Female"}, "male": {"label": "Male"}}},
        },
        "labels": {},
        "lexicon": [
            *({"terms": [word], "region": g} for g, (word, _) in REGIONS.items()),
            {"terms": ["zydecore"], "genre": "zydecore"},
            {"terms": ["glass harp"], "instrument": "glassharp"},
            {"terms": ["in klingon"], "language": "klingon"},
        ],
        "descriptors": {
            "grainy": {"label": "Grainy-sound words", "terms": ["grainy", "grainy recording"]},
            "exotic": {"label": "Othering words", "terms": ["exotic"]},
            "long_caption": {"label": "Long caption", "numeric": "caption_words"},
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _ytid(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(11))


def generate(
    n: int = 2000,
    *,
    seed: int = 0,
    planted: bool = True,
    annotators: int = 5,
) -> tuple[list[dict], set[str]]:
    """Rows (CSV dicts) and the set of ytids that 'survived download'.

    planted=True plants: south_e under-represented (~1%); "grainy" used more for north_a within every
    annotator; "exotic" used mostly by annotator 3, who also sees most south_c clips (a confounded
    association); south_d clips survive download less often.
    planted=False: every group equally likely, every descriptor and survival independent of group.
    """
    rng = random.Random(seed)
    groups = list(REGIONS)
    weights = [0.2475, 0.2475, 0.2475, 0.2475, 0.01] if planted else [0.2] * 5
    rows, alive = [], set()
    for i in range(n):
        region = rng.choices(groups, weights)[0]
        if planted:
            p3 = 0.7 if region == "south_c" else 0.05
            author = 3 if rng.random() < p3 else rng.choice([a for a in range(annotators) if a != 3])
            grainy = rng.random() < (0.5 if region == "north_a" else 0.15)
            exotic = rng.random() < (0.6 if author == 3 else 0.02)
            survives = rng.random() < (0.6 if region == "south_d" else 0.95)
        else:
            author = rng.randrange(annotators)
            grainy = rng.random() < 0.2
            exotic = rng.random() < 0.1
            survives = rng.random() < 0.9
        words = rng.sample(FILLER, rng.randint(4, 14))
        caption = f"A song from {REGIONS[region][0]}: {' '.join(words)}."
        if grainy:
            caption += " It is a grainy recording."
        if exotic:
            caption += " The feel is exotic."
        if rng.random() < 0.5:
            caption += f" A {rng.choice(['female', 'male'])} voice sings."
        ytid = _ytid(rng)
        rows.append(
            {
                "ytid": ytid,
                "start_s": 30,
                "end_s": 40,
                "audioset_positive_labels": "/m/04rlf",
                "aspect_list": str(["grainy"] if grainy else ["song"]),
                "caption": caption,
                "author_id": author,
                "is_balanced_subset": i % 5 == 0,
                "is_audioset_eval": i % 2 == 0,
            }
        )
        if survives:
            alive.add(ytid)
    return rows, alive


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def write_dataset(tmp: Path, *, planted: bool, n: int = 2000, seed: int = 0) -> dict[str, Path]:
    rows, alive = generate(n, seed=seed, planted=planted)
    available = tmp / "available.txt"
    available.write_text("\n".join(sorted(alive)) + "\n", encoding="utf-8")
    return {
        "csv": write_csv(tmp / "synthetic.csv", rows),
        "taxonomy": write_taxonomy(tmp / "taxonomy.yaml"),
        "available": available,
    }
