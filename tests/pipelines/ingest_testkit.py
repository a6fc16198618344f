"""Shared pieces of the ingest tests: generated media, fault names, CSV writing, shard reading.

Imported by tests/pipelines/test_ingest*.py (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import csv
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from cadenza.formats.failures import SESSION_SIDE
from cadenza.testing.mediaserver import write_media

FORMATS = ("wav", "m4a", "webm")
# ytids (11 characters) of good media: (seconds, seed)
GOOD = {"goodAAAAAAA": (20.0, 1), "goodBBBBBBB": (14.0, 2), "goodCCCCCCC": (12.0, 3)}
# ytids that misbehave on the server, with their fault and the category the ingest must give them:
# a failure record for the clip-side ones, pending (no record) for the session-side ones
FAULTS = {
    "f404xxxxxxx": ("404", "not_found"),
    "f403xxxxxxx": ("403", "forbidden"),
    "f410xxxxxxx": ("410", "gone"),
    "f500xxxxxxx": ("500", "server_error"),
    "ftruncatedx": ("truncated", "truncated"),
    "fhtmlxxxxxx": ("html", "not_audio"),
    "foversizedx": ("oversized", "too_large"),
    "fdropxxxxxx": ("drop", "connection"),
}
SESSION_FAULTS = {ytid for ytid, (_, category) in FAULTS.items() if category in SESSION_SIDE}
RETRY_OK = "f429xxxxxxx"  # 429 then 200: lands after a retry
HEADER = ["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
          "is_balanced_subset", "is_audioset_eval"]


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Generated media in wav, m4a/AAC and webm/opus; fault ytids are copies of a good file.

    Every test module that imports this fixture gets its own instance, so the files are made once
    per session in a fixed place and reused (the marker file is written last).
    """
    d = tmp_path_factory.getbasetemp() / "ingest-media"
    if (d / ".complete").is_file():
        return d
    d.mkdir(exist_ok=True)
    for ytid, (seconds, seed) in GOOD.items():
        write_media(d, ytid, seconds, FORMATS, seed=seed)
    for ytid in [*FAULTS, RETRY_OK]:
        for fmt in FORMATS:
            shutil.copy(d / f"goodCCCCCCC.{fmt}", d / f"{ytid}.{fmt}")
    (d / ".complete").write_text("ok\n")
    return d


def server_faults() -> dict[str, str]:
    return {ytid: fault for ytid, (fault, _) in FAULTS.items()} | {RETRY_OK: "429-then-200"}


def write_csv(path: Path, rows: list[tuple], *, extra_lines: list[str] = ()) -> Path:
    """rows: (ytid, start_s, end_s) or (ytid, start_s, end_s, caption)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for r in rows:
            ytid, start, end = r[:3]
            caption = r[3] if len(r) > 3 else f"A calm synthesized chord, clip {ytid} at {start} s."
            w.writerow([ytid, start, end, "/m/04rlf,/m/05148p4", "['chord', 'calm']", caption, 4, "False", "True"])
        for line in extra_lines:
            f.write(line + "\n")
    return path


def read_shard(tar_path: Path) -> dict[str, dict[str, bytes]]:
    """Samples of a shard read with plain tarfile: {key: {ext: bytes}}."""
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            assert m.isfile() and m.mtime == 0 and m.uid == 0 and m.gid == 0
            key, ext = m.name.split(".", 1)
            out.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return out


def read_all(out: Path) -> tuple[dict[str, dict], list[dict]]:
    """Every sample's json (by key) and every failure record of an ingest output directory."""
    samples: dict[str, dict] = {}
    for tar in sorted((out / "shards").glob("*.tar")):
        for key, members in read_shard(tar).items():
            assert key not in samples, f"{key} in two shards"
            samples[key] = json.loads(members["json"])
    failures = [json.loads(line) for f in sorted((out / "failures").glob("*.jsonl"))
                for line in f.read_text().splitlines() if line.strip()]
    return samples, failures


def read_pending(out: Path) -> dict[str, str]:
    """Rows the shards' stats list as pending (session-side failures): key -> category."""
    pending: dict[str, str] = {}
    for stats in sorted((out / "stats").glob("*.stats.json")):
        st = json.loads(stats.read_text())
        assert len(st["pending"]) == sum(st["pending_by_category"].values())
        pending.update(st["pending"])
    return pending


def ontology_file(path: Path) -> Path:
    """A two-class ontology.json, enough to name the labels the test CSVs use."""
    classes = [
        {"id": "/m/04rlf", "name": "Music", "description": "", "citation_uri": "", "positive_examples": [],
         "child_ids": ["/m/05148p4"], "restrictions": []},
        {"id": "/m/05148p4", "name": "Musical instrument", "description": "", "citation_uri": "",
         "positive_examples": [], "child_ids": [], "restrictions": []},
    ]
    path.write_text(json.dumps(classes))
    return path
