"""Statistics, rebalancing weights and survival readers used by the audit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from cadenza.audit.stats import benjamini_hochberg, mantel_haenszel, pct_ci, two_by_two
from cadenza.audit.survival import (
    LOST,
    PENDING,
    SURVIVED,
    read_available,
    survival_from_available,
    survival_from_ingest,
)
from cadenza.audit.taxonomy_file import load_taxonomy
from cadenza.audit.weights import flatten_weights, load_weights, weighted_shares, write_weights
from cadenza.common.sources import SourceError
from cadenza.formats.failures import FailureRecord, failures_jsonl
from cadenza.formats.shards import shard_name, write_shard
from cadenza.formats.storage import write_json_atomic
from cadenza.musiccaps.schema import ClipRecord


def test_a_share_ci_of_no_clips_reads_n_a():
    assert pct_ci([0.0, 0.2775]) == "[0.0%, 27.8%]"
    assert pct_ci([math.nan, math.nan]) == "[n/a, n/a]"


def test_two_by_two_effects_and_tests():
    t = two_by_two(30, 70, 10, 90)
    rr = stats.contingency.relative_risk(30, 100, 10, 100)
    assert t.rr == pytest.approx(rr.relative_risk)
    assert t.rr_ci == pytest.approx(tuple(rr.confidence_interval()), rel=1e-6)
    assert t.odds_ratio == pytest.approx(30 * 90 / (70 * 10))
    assert t.test == "chi2" and t.p == pytest.approx(stats.chi2_contingency([[30, 70], [10, 90]]).pvalue)
    small = two_by_two(3, 1, 1, 3)
    assert small.test == "fisher" and small.p == pytest.approx(stats.fisher_exact([[3, 1], [1, 3]]).pvalue)
    zero = two_by_two(0, 50, 10, 40)  # Haldane correction keeps the estimates finite
    assert 0 < zero.rr < 1 and math.isfinite(zero.rr_ci[1])


def test_benjamini_hochberg():
    p = [0.01, 0.04, 0.03, 0.2]
    # by hand: sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.04*4/3... monotone
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.0533333, 0.0533333, 0.2], rel=1e-5)
    assert benjamini_hochberg([]) == []


def test_mantel_haenszel_against_hand_computation():
    # one stratum: MH equals the crude estimate
    one = mantel_haenszel([(30, 70, 10, 90)])
    crude = two_by_two(30, 70, 10, 90)
    assert one.rr == pytest.approx(crude.rr) and one.odds_ratio == pytest.approx(crude.odds_ratio)
    # Simpson's paradox: strong crude association, none within strata
    strata = [(80, 20, 8, 2), (2, 8, 20, 80)]
    mh = mantel_haenszel(strata)
    a = sum(s[0] for s in strata)
    b, c, d = (sum(s[i] for s in strata) for i in (1, 2, 3))
    assert two_by_two(a, b, c, d).rr > 2
    assert mh.rr == pytest.approx(1.0) and mh.odds_ratio == pytest.approx(1.0) and mh.p > 0.5
    # CMH statistic by hand for two strata
    strata = [(10, 20, 5, 25), (15, 15, 8, 22)]
    num, var = 0.0, 0.0
    for a, b, c, d in strata:
        n = a + b + c + d
        num += a - (a + b) * (a + c) / n
        var += (a + b) * (c + d) * (a + c) * (b + d) / (n * n * (n - 1))
    chi2 = (abs(num) - 0.5) ** 2 / var
    assert mantel_haenszel(strata).chi2 == pytest.approx(chi2)
    assert mantel_haenszel(strata).p == pytest.approx(stats.chi2.sf(chi2, 1))


def _clip(i: int, caption: str, author: int = 0) -> ClipRecord:
    return ClipRecord(f"y{i:010d}", 0.0, 10.0, (), (), caption, author, False, False, row=i + 1)


def test_flatten_weights_cap_and_effect():
    tx = load_taxonomy()
    captions = ["Rock song."] * 400 + ["Salsa song."] * 40 + ["Gamelan piece."] * 4 + ["A calm piece."] * 100
    assignments = tx.assign_all([_clip(i, c) for i, c in enumerate(captions)])
    w = flatten_weights(assignments, "region", cap=5.0)
    assert max(w) <= 5.0 + 1e-9 and min(w) > 0
    unspecified = [x for x, a in zip(w, assignments, strict=True) if a.groups["region"] == ["unspecified"]]
    assert set(unspecified) == {1.0}
    specified_mass = sum(x for x, a in zip(w, assignments, strict=True) if a.groups["region"] != ["unspecified"])
    assert specified_mass == pytest.approx(444)  # total mass of the specified clips is kept
    before = weighted_shares(assignments, "region", [1.0] * len(w))
    after = weighted_shares(assignments, "region", w)
    assert after["southeast_asia"] > 4 * before["southeast_asia"]  # up-weighted, but only up to the cap
    assert after["latin_america"] > before["latin_america"] and after["europe"] < before["europe"]
    with pytest.raises(ValueError):
        flatten_weights(assignments, "region", cap=0.5)


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_weights_file_round_trip(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    write_weights(path, "region", 5.0, {"aaaaaaaaaaa": 2.5, "bbbbbbbbbbb": 0.5}, {"aaaaaaaaaaa": "africa"})
    assert load_weights(path) == {"aaaaaaaaaaa": 2.5, "bbbbbbbbbbb": 0.5}
    if suffix == ".json":
        doc = json.loads(path.read_text())
        assert doc["grouping"] == "region" and doc["cap"] == 5.0


def test_survival_from_an_ingest_dir(tmp_path):
    clips = [_clip(i, "x") for i in range(5)]
    d = str(tmp_path / "ingest")
    samples = [{"__key__": c.key, "json": json.dumps(c.to_dict()), "txt": c.caption} for c in clips[:2]]
    write_shard(f"{d}/shards/{shard_name('audio', 0)}", samples, {"count": 2})
    # an incomplete shard (no stats marker) does not count
    from cadenza.formats.shards import tar_bytes
    from cadenza.formats.storage import write_bytes_atomic

    write_bytes_atomic(f"{d}/shards/{shard_name('audio', 1)}", tar_bytes([{"__key__": clips[4].key, "txt": "x"}]))
    fails = [
        FailureRecord(clips[2].key, "fetch", "not_found", "gone", ytid=clips[2].ytid, row=3),
        FailureRecord(clips[3].key, "fetch", "rate_limited", "slow down", ytid=clips[3].ytid, row=4),
        FailureRecord("zzzzzzzzzzz_00000000_00010000", "fetch", "not_found", "not ours"),
    ]
    write_bytes_atomic(f"{d}/failures/part-0.jsonl", failures_jsonl(fails))
    write_json_atomic(f"{d}/manifest.json", {"kind": "audio", "clips_written": 2})
    s = survival_from_ingest(d, clips)
    # a rate limit blames the session, not the clip: pending, never lost
    assert [s.status[c.key] for c in clips] == [SURVIVED, SURVIVED, LOST, PENDING, PENDING]
    assert s.lost_category == {clips[2].key: "not_found"}
    assert s.pending_category == {clips[3].key: "rate_limited", clips[4].key: "not_run"}
    assert s.manifest["clips_written"] == 2 and s.unknown_keys == ["zzzzzzzzzzz_00000000_00010000"]
    with pytest.raises(SourceError, match="not an ingest output"):
        survival_from_ingest(str(tmp_path / "nothing"), clips)


def test_survival_from_available_list(tmp_path):
    clips = [_clip(i, "x") for i in range(3)]
    f = tmp_path / "available.txt"
    f.write_text(f"# fetched today\n{clips[0].ytid}\n\n{clips[2].ytid}, extra column\n")
    s = survival_from_available(f, clips)
    assert [s.status[c.key] for c in clips] == [SURVIVED, LOST, SURVIVED]
    (tmp_path / "a.json").write_text(json.dumps([clips[1].ytid]))
    assert read_available(tmp_path / "a.json") == {clips[1].ytid}
    (tmp_path / "bad.txt").write_text("not-a-ytid!\n")
    with pytest.raises(SourceError, match="line 1"):
        read_available(tmp_path / "bad.txt")


def test_association_matrix_is_consistent():
    # the crude table the audit reports adds up to the clips, for a real assignment
    from cadenza.audit.analysis import associations

    tx = load_taxonomy()
    rng = np.random.default_rng(0)
    caps = [("Salsa, low quality." if rng.random() < 0.5 else "Salsa.") if i % 2 else "Rock." for i in range(200)]
    assignments = tx.assign_all([_clip(i, c, author=i % 4) for i, c in enumerate(caps)])
    res = associations(assignments, tx, min_group=10)
    t = next(t for t in res["tests"] if t["group"] == "latin_america" and t["descriptor"] == "audio_quality")
    c = t["crude"]
    assert c["a"] + c["b"] + c["c"] + c["d"] == 200 and c["a"] + c["b"] == 100 and c["c"] == 0


def test_weights_balance_annotators_within_the_cap():
    from collections import Counter

    from cadenza.audit.weights import annotator_shares, flatten_weights, weighted_shares

    tx = load_taxonomy()
    # annotator 0 writes most clips and most of them about salsa: groups and annotators are entangled
    caps = ["A salsa tune."] * 60 + ["A jazz tune."] * 20 + ["A bhangra tune."] * 20 + ["A calm tune."] * 10
    authors = [0] * 40 + [1] * 20 + [0] * 15 + [2] * 5 + [3] * 20 + [0] * 5 + [1] * 5
    assignments = tx.assign_all([_clip(i, c, author=a) for i, (c, a) in enumerate(zip(caps, authors, strict=True))])
    assert Counter(authors) == {0: 60, 1: 25, 3: 20, 2: 5}
    plain = flatten_weights(assignments, "region", cap=10.0)
    both = flatten_weights(assignments, "region", cap=10.0, balance_annotators=True)
    assert max(both) <= 10.0 + 1e-9 and abs(sum(both) - len(both)) < 1e-6
    before = annotator_shares(assignments, [1.0] * len(assignments))
    after_plain, after_both = annotator_shares(assignments, plain), annotator_shares(assignments, both)
    assert before["0"] > 0.5 and after_plain["0"] > 0.4  # flattening regions alone leaves annotator 0 dominant
    assert all(abs(v - 0.25) < 0.02 for v in after_both.values()), after_both
    shares = weighted_shares(assignments, "region", both)
    specified = {g: v for g, v in shares.items() if g != "unspecified"}
    assert max(specified.values()) / min(specified.values()) < 1.2, specified  # groups stay flat too
    tight = flatten_weights(assignments, "region", cap=2.0, balance_annotators=True)
    assert max(tight) <= 2.0 + 1e-9 and abs(sum(tight) - len(tight)) < 1e-6
    # the cap binds: annotator 2's 5 clips cannot reach a quarter of the mass, but get as close as it allows
    assert annotator_shares(assignments, tight)["2"] == pytest.approx(2.0 * 5 / len(tight))
