from __future__ import annotations

import json

import pytest

from cadenza.common.sources import SourceError
from cadenza.musiccaps import load_musiccaps, load_ontology
from cadenza.musiccaps.ontology import Ontology

TOY = [
    {"id": "/m/root", "name": "Music", "child_ids": ["/m/genre"], "restrictions": ["abstract"]},
    {"id": "/m/genre", "name": "Music genre", "child_ids": ["/m/rock", "/m/jazz"], "restrictions": []},
    {"id": "/m/rock", "name": "Rock music", "child_ids": ["/m/punk"]},
    {"id": "/m/punk", "name": "Punk rock", "child_ids": []},
    {"id": "/m/jazz", "name": "Jazz", "child_ids": ["/m/punk"], "restrictions": ["blacklist"]},
]


def test_closure_parents_children():
    o = Ontology.from_entries(TOY)
    assert o.ancestors("/m/punk") == {"/m/rock", "/m/jazz", "/m/genre", "/m/root"}
    assert o.closure(["/m/rock"]) == {"/m/rock", "/m/genre", "/m/root"}
    assert o.descendants("/m/genre") == {"/m/rock", "/m/jazz", "/m/punk"}
    assert set(o.parents["/m/punk"]) == {"/m/rock", "/m/jazz"}
    assert o.blacklisted == {"/m/jazz"} and o.abstract == {"/m/root"}
    assert o.find("Jazz") == "/m/jazz"


def test_bad_ontology_file(tmp_path):
    p = tmp_path / "o.json"
    p.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(SourceError, match="not an AudioSet ontology"):
        load_ontology(p)
    p.write_text("{broken")
    with pytest.raises(SourceError, match="not a readable"):
        load_ontology(p)


def test_real_ontology_covers_musiccaps(ontology_json, musiccaps_csv):
    o = load_ontology(ontology_json)
    assert len(o.names) == 632
    music = o.find("Music")
    assert o.find("Rock music") in o.descendants(music)
    summary = load_musiccaps(musiccaps_csv).summary(o)
    assert summary["label_coverage"]["labels_not_in_ontology"] == []
    assert summary["valid"] == 5521
