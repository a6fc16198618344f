"""The taxonomy: data file is consistent, matching is whole-word, labels go through the ontology closure."""

from __future__ import annotations

import pytest

from cadenza.audit.groupings import GROUPINGS, TaxonomyError
from cadenza.audit.phrase_match import PhraseMatcher
from cadenza.audit.taxonomy_file import load_taxonomy, parse_taxonomy
from cadenza.musiccaps.ontology import Ontology, load_ontology
from cadenza.musiccaps.schema import ClipRecord


def clip(caption: str, aspects: tuple[str, ...] = (), labels: tuple[str, ...] = ()) -> ClipRecord:
    return ClipRecord("abcdefghijk", 0.0, 10.0, labels, aspects, caption, 1, False, False, row=1)


@pytest.fixture(scope="module")
def tx():
    return load_taxonomy()


def test_packaged_taxonomy_is_consistent(tx):
    assert set(tx.groupings) >= set(GROUPINGS)
    assert {tx.rollup_of(r) for r in tx.groupings["region"]["groups"]} == {"global_north", "global_south"}
    assert 0 < tx.reference_share["global_south"] < 1
    assert len(tx.lexicon) > 500 and {"audio_quality", "othering", "vocal_gender_mention"} <= set(tx.descriptors)
    assert "no" in tx._lexicon_matcher.negations  # quoted in the YAML: a bare no would read as false


def test_whole_words_not_substrings(tx):
    a = tx.assign(clip("A female singer over popular chords, a maleficent mood and a cannonball."))
    assert a.groups["vocal_gender"] == ["female"]  # "male" is not inside "female"/"maleficent"
    assert a.groups["genre"] == ["unspecified"]  # "popular" is not "pop"


def test_longest_phrase_wins(tx):
    a = tx.assign(clip("A spanish guitar and a french horn play."))
    assert a.groups["region"] == ["unspecified"]  # instruments, not places
    assert set(a.groups["instrument"]) == {"plucked_string", "brass"}
    b = tx.assign(clip("An indian classical raga on the sitar."))
    assert b.groups["region"] == ["south_asia"] and "classical" not in b.groups["genre"]


def test_spelling_variants_and_plurals(tx):
    for text in ("hip hop", "hip-hop", "Hip Hop", "hiphop"):
        assert tx.assign(clip(f"This is {text}.")).groups["genre"] == ["hip_hop"], text
    assert tx.assign(clip("Two violins.")).groups["instrument"] == ["bowed_string"]
    assert tx.assign(clip("Bongos and tablas.")).groups["region"] == ["south_asia"]


def test_negated_mentions_do_not_count(tx):
    a = tx.assign(clip("There are no female vocals. This is not a rock song, but a male voice sings."))
    assert a.groups["vocal_gender"] == ["male"]
    assert a.groups["genre"] == ["unspecified"]
    # negation does not cross a clause break
    assert tx.assign(clip("No drums, female voice.")).groups["vocal_gender"] == ["female"]


def test_no_evidence_is_unspecified_and_rollup_is_derived(tx):
    a = tx.assign(clip("A calm piece."))
    assert all(a.groups[g] == ["unspecified"] for g in GROUPINGS if g != "instrument")
    assert a.rollup == "unspecified" and a.evidence == []
    assert tx.assign(clip("Salsa with timbales.")).rollup == "global_south"
    assert tx.assign(clip("Bluegrass banjo.")).rollup == "global_north"
    assert tx.assign(clip("Bluegrass meets salsa.")).rollup == "mixed"


def test_evidence_points_at_the_text(tx):
    c = clip("The Low Quality recording features a sitar and a Female vocal.", aspects=("bollywood", "e-guitar"))
    a = tx.assign(c)
    for e in a.evidence:
        if e.source == "caption":
            assert c.caption[e.span[0] : e.span[1]] == e.text
        else:
            assert e.text.lower() in c.aspect_list[e.aspect].lower()
    assert ("region", "south_asia", "aspect", "bollywood") in {
        (e.grouping, e.group, e.source, e.text) for e in a.evidence
    }
    assert a.descriptor_hits["audio_quality"] == ["Low Quality recording"]
    assert a.to_dict()["groups"]["region"] == ["south_asia"]


def test_aspect_only_terms(tx):
    assert tx.assign(clip("x", aspects=("instrumental",))).groups["language"] == ["instrumental"]
    # "the instrumental" in a caption (the backing track) is not evidence that nobody sings
    assert tx.assign(clip("A male voice sings over the instrumental.")).groups["language"] == ["unspecified"]


def _tiny_ontology() -> Ontology:
    return Ontology.from_entries(
        [
            {"id": "/m/g", "name": "Music genre", "child_ids": ["/m/la", "/m/af"]},
            {"id": "/m/la", "name": "Music of Latin America", "child_ids": ["/m/sa", "/m/fl", "/m/ku"]},
            {"id": "/m/af", "name": "Music of Africa", "child_ids": []},
            {"id": "/m/sa", "name": "Salsa music", "child_ids": []},
            {"id": "/m/fl", "name": "Flamenco", "child_ids": []},
            {"id": "/m/ku", "name": "Kuduro", "child_ids": []},
        ]
    )


def test_labels_use_the_nearest_mapped_ancestor():
    doc = {
        "groupings": {
            "region": {
                "groups": {
                    "latin_america": {"rollup": "global_south"},
                    "europe": {"rollup": "global_north"},
                    "africa": {"rollup": "global_south"},
                }
            },
            "genre": {"groups": {"latin": {}, "african": {}, "traditional": {}}},
            "instrument": {"groups": {}},
            "language": {"groups": {}},
            "vocal_gender": {"groups": {}},
        },
        "labels": {
            "Music of Latin America": {"genre": "latin", "region": "latin_america"},
            "Music of Africa": {"genre": "african", "region": "africa"},
            "Flamenco": {"genre": "traditional", "region": "europe"},
            "Kuduro": {"region": "africa"},
        },
    }
    tx = parse_taxonomy(doc)
    onto = _tiny_ontology()
    salsa = tx.assign(clip("x", labels=("/m/sa",)), onto)
    assert salsa.groups["region"] == ["latin_america"] and salsa.groups["genre"] == ["latin"]
    assert salsa.evidence[0].via == "Music of Latin America" and salsa.evidence[0].text == "Salsa music"
    flamenco = tx.assign(clip("x", labels=("/m/fl",)), onto)
    assert flamenco.groups["region"] == ["europe"] and flamenco.groups["genre"] == ["traditional"]
    kuduro = tx.assign(clip("x", labels=("/m/ku",)), onto)  # region overridden, genre inherited
    assert kuduro.groups["region"] == ["africa"] and kuduro.groups["genre"] == ["latin"]


def test_real_ontology_labels(tx, ontology_json):
    onto = load_ontology(ontology_json)
    beatbox = tx.assign(clip("x", labels=(onto.find("Beatboxing"),)), onto)
    assert set(beatbox.groups["genre"]) == {"hip_hop", "vocal"}  # two parents in the ontology DAG
    sitar = tx.assign(clip("x", labels=(onto.find("Sitar"),)), onto)
    assert sitar.groups["instrument"] == ["plucked_string"] and sitar.groups["region"] == ["south_asia"]
    assert tx.assign(clip("x", labels=(onto.find("Music"),)), onto).groups["genre"] == ["unspecified"]
    # every class the packaged taxonomy maps exists in the full ontology (a subset ontology may lack some)
    assert sorted(name for name in tx.labels if name not in set(onto.names.values())) == []


def test_bad_taxonomy_errors_name_the_entry():
    base = {"groupings": {g: {"groups": {}} for g in GROUPINGS}}
    base["groupings"]["region"]["groups"] = {"x": {"label": "X", "rollup": "global_north"}}
    with pytest.raises(TaxonomyError, match="unknown region group"):
        parse_taxonomy({**base, "lexicon": [{"terms": ["foo"], "region": "nowhere"}]})
    with pytest.raises(TaxonomyError, match="quote labels"):
        bad = {**base, "groupings": {**base["groupings"], "genre": {"groups": {"g": {"label": "A", "B)": None}}}}}
        parse_taxonomy(bad)
    with pytest.raises(TaxonomyError, match="already maps"):
        parse_taxonomy(
            {
                **base,
                "groupings": {**base["groupings"], "genre": {"groups": {"a": {}, "b": {}}}},
                "lexicon": [{"terms": ["hip hop"], "genre": "a"}, {"terms": ["hip-hop"], "genre": "b"}],
            }
        )
    onto = _tiny_ontology()
    with pytest.raises(TaxonomyError, match="none of its label names is an AudioSet class"):
        parse_taxonomy({**base, "labels": {"Nonexistent": {"region": "x"}}}).assign(clip("x", labels=("/m/sa",)), onto)


def test_phrase_matcher_spans():
    m = PhraseMatcher(["drum and bass", "bass"], ["no"])
    found = m.find("Drum-and-bass with a bass line, no bass.")
    assert [(x.key, x.text) for x in found] == [("drumandbass", "Drum-and-bass"), ("bass", "bass")]


def test_region_evidence_is_explicit_or_genre_origin(tx):
    rock = clip("A heavy metal song with a distorted guitar.")
    both = tx.assign(rock)
    assert set(both.groups["region"]) == {"north_america", "europe"} and both.rollup == "global_north"
    assert {e.basis for e in both.evidence if e.grouping == "region"} == {"origin"}
    explicit = tx.assign(rock, region_evidence="explicit")
    assert explicit.groups["region"] == ["unspecified"] and explicit.rollup == "unspecified"
    assert explicit.groups["genre"] == ["rock"]  # only region evidence depends on the rule
    mixed = clip("A rock band with a sitar and a tabla, techno beat.")
    views = {r: tx.assign(mixed, region_evidence=r) for r in ("explicit", "origin", "both")}
    assert views["explicit"].groups["region"] == ["south_asia"] and views["explicit"].rollup == "global_south"
    assert set(views["origin"].groups["region"]) == {"north_america", "europe"}
    assert views["both"].rollup == "mixed"
    for rule, view in views.items():  # a view derived from the all-evidence assignment is the same
        derived = tx.region_view(views["both"], rule)
        assert (derived.groups, derived.rollup, derived.evidence) == (view.groups, view.rollup, view.evidence), rule
    # named places and traditions stay explicit, whatever genre they come with
    for text in ("chicago blues", "K-pop", "salsa", "Brazilian rock"):
        assert tx.assign(clip(f"A {text} song."), region_evidence="explicit").rollup != "unspecified", text
    assert tx.assign(clip("x"), region_evidence="explicit").to_dict()["evidence"] == []


def test_region_evidence_basis_is_validated():
    base = {
        "groupings": {
            "region": {"groups": {"x": {"label": "X", "rollup": "global_north"}}},
            **{g: {"groups": {}} for g in GROUPINGS if g != "region"},
        }
    }
    with pytest.raises(TaxonomyError, match="region_evidence must be one of"):
        parse_taxonomy({**base, "lexicon": [{"terms": ["foo"], "region": "x", "region_evidence": "guess"}]})
    with pytest.raises(TaxonomyError, match="maps to no region"):
        parse_taxonomy({**base, "lexicon": [{"terms": ["foo"], "genre": [], "region_evidence": "origin"}]})
    tx = parse_taxonomy({**base, "lexicon": [{"terms": ["foo"], "region": "x", "region_evidence": "origin"}]})
    assert tx.origin_terms == {"foo"}
    with pytest.raises(ValueError, match="region_evidence must be one of"):
        tx.assign(clip("foo"), region_evidence="guess")
