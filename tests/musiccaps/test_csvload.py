from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.common.sources import SourceError
from cadenza.musiccaps import load_musiccaps, parse_musiccaps
from cadenza.musiccaps.csvload import parse_aspect_list
from cadenza.musiccaps.schema import ClipRecord

HEADER = (
    "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval"
)
GOOD = [
    "-0Gj8-vB1q4,30,40,\"/m/0140xf,/m/04rlf\",\"['low quality', 'sad']\",A sad ballad.,4,False,True",
    "-0SdAVK79lg,30,40,/m/0155w,\"[\"\"children's song\"\", 'guitar']\",A guitar song.,0,True,False",
    "abcdefghijk,0,10,,[],Just noise.,9,false,false",
]


def csv_text(*rows: str, newline: str = "\n") -> str:
    return newline.join([HEADER, *rows]) + newline


def test_good_rows_parse_with_lf_and_crlf():
    for nl in ("\n", "\r\n"):
        res = parse_musiccaps(csv_text(*GOOD, newline=nl))
        assert [c.ytid for c in res.clips] == ["-0Gj8-vB1q4", "-0SdAVK79lg", "abcdefghijk"]
        assert res.rejects == []
        first = res.clips[0]
        assert first.aspect_list == ("low quality", "sad")
        assert first.audioset_labels == ("/m/0140xf", "/m/04rlf")
        assert first.is_audioset_eval and not first.is_balanced_subset
        assert res.clips[1].aspect_list == ("children's song", "guitar")
        assert res.clips[2].aspect_list == () and res.clips[2].audioset_labels == ()


def test_planted_bad_rows_each_rejected_with_reason():
    bad = [
        ("bad!ytid", "bad!ytid,0,10,,['a'],cap,1,False,False", "ytid", "not a YouTube id"),
        ("start>=end", "aaaaaaaaaaa,40,30,,['a'],cap,1,False,False", "end_s", "window is empty"),
        ("unparsable aspects", "bbbbbbbbbbb,0,10,,\"['a', b]\",cap,1,False,False", "aspect_list", "unparsable"),
        ("code in aspects", "ccccccccccc,0,10,,\"__import__('os').system('x')\",cap,1,False,False",
         "aspect_list", "unparsable"),
        ("missing caption", "ddddddddddd,0,10,,['a'],,1,False,False", "caption", "missing caption"),
        ("duplicate", GOOD[0], "ytid", "duplicate: same ytid and window as row 1"),
        ("non-boolean", "eeeeeeeeeee,0,10,,['a'],cap,1,maybe,False", "is_balanced_subset", "not a boolean"),
        ("bad mid", "fffffffffff,0,10,/x/123,['a'],cap,1,False,False", "audioset_positive_labels", "AudioSet MID"),
        ("nan start", "ggggggggggg,nan,10,,['a'],cap,1,False,False", "start_s", "not a finite"),
        ("long window", "hhhhhhhhhhh,0,1000,,['a'],cap,1,False,False", "end_s", "window length"),
    ]
    truncated = "iiiiiiiiiii,0,10,,['a'],cap"  # last line cut off mid-row
    rows = [GOOD[0], *[b[1] for b in bad], GOOD[1], truncated]
    res = parse_musiccaps(csv_text(*rows).rstrip("\n"))
    assert [c.ytid for c in res.clips] == ["-0Gj8-vB1q4", "-0SdAVK79lg"]
    assert res.rows_read == len(rows)
    assert len(res.rejects) == len(bad) + 1
    for reject, (what, _, field, reason) in zip(res.rejects, bad, strict=False):
        assert reject.field == field, what
        assert reason in reject.reason, (what, reject.reason)
    last = res.rejects[-1]
    assert last.row == len(rows) and "wrong number of fields" in last.reason
    # row numbers point at the data row in the file (1-based, header excluded)
    assert res.rejects[0].row == 2 and res.rejects[0].line == 3


def test_aspect_list_grammar():
    assert parse_aspect_list("['a', \"b's\", 'c\\'d']") == ("a", "b's", "c'd")
    assert parse_aspect_list(" [ ] ") == ()
    for bad in ["['a',]", "['a' 'b']", "[1, 2]", "['a'] + ['b']", "('a',)", "['a']; import os", "[f'{x}']"]:
        with pytest.raises(ValueError):
            parse_aspect_list(bad)


def test_missing_columns_and_empty_file_are_file_errors(tmp_path):
    with pytest.raises(SourceError, match="missing column"):
        parse_musiccaps("ytid,caption\nx,y\n")
    with pytest.raises(SourceError, match="empty file"):
        parse_musiccaps("")
    with pytest.raises(SourceError, match="no such file"):
        load_musiccaps(tmp_path / "nope.csv")


def test_invalid_utf8_and_bom(tmp_path):
    p = tmp_path / "m.csv"
    body = csv_text(GOOD[0]).encode("utf-8-sig") + b"jjjjjjjjjjj,0,10,,['a'],caf\xe9 latin-1,1,False,False\n"
    p.write_bytes(body)
    res = load_musiccaps(p)
    assert [c.ytid for c in res.clips] == ["-0Gj8-vB1q4"]
    assert res.rejects[0].field == "caption" and "UTF-8" in res.rejects[0].reason


def test_record_round_trip():
    clip = parse_musiccaps(csv_text(GOOD[0])).clips[0]
    assert ClipRecord.from_dict(clip.to_dict()) == clip
    assert clip.key == "-0Gj8-vB1q4_00030000_00040000"


_field_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[_field_text] * 9), max_size=6))
def test_parser_never_raises_and_accounts_for_every_row(rows):
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER.split(","))
    w.writerows(rows)
    res = parse_musiccaps(buf.getvalue())
    nonblank = sum(1 for r in rows if any(r))  # csv.writer writes all-empty rows as ',,,', still rows
    assert res.rows_read >= nonblank - 0 or res.rows_read == len(rows)
    assert len(res.clips) + len(res.rejects) == res.rows_read


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_aspect_list_parser_never_executes(text):
    import builtins

    called = []
    real_import = builtins.__import__

    def spy(*a, **k):
        called.append(a[0])
        return real_import(*a, **k)

    builtins.__import__ = spy
    try:
        try:
            out = parse_aspect_list(f"[__import__('os'), {text!r}]" if text else text)
        except (ValueError, SyntaxError):
            out = None
    finally:
        builtins.__import__ = real_import
    assert called == []
    assert out is None or all(isinstance(x, str) for x in out)


def test_real_musiccaps(musiccaps_csv):
    res = load_musiccaps(musiccaps_csv)
    assert len(res.clips) == 5521 and res.rejects == []
    assert sum(c.is_balanced_subset for c in res.clips) == 1000
    assert {c.author_id for c in res.clips} == set(range(10))
