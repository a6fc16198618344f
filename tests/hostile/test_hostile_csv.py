"""Hostile MusicCaps CSVs, generated here: every row is accounted for, nothing is executed."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.common.sources import SourceError
from cadenza.musiccaps import load_musiccaps

COLUMNS = [
    "ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
    "is_balanced_subset", "is_audioset_eval",
]


def row(**over: str) -> list[str]:
    base = {
        "ytid": "abcdefghijk", "start_s": "0", "end_s": "10", "audioset_positive_labels": "/m/04rlf",
        "aspect_list": "['rock']", "caption": "A rock song.", "author_id": "3",
        "is_balanced_subset": "False", "is_audioset_eval": "True",
    }
    base.update(over)
    return [base[c] for c in COLUMNS]


def write(tmp_path, rows: list[list[str]], *, encoding: str = "utf-8", newline: str = "\r\n") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(COLUMNS)
    w.writerows(rows)
    p = tmp_path / "hostile.csv"
    p.write_bytes(buf.getvalue().encode(encoding))
    return str(p)


HOSTILE_ROWS = {
    # ytids that try to be options, paths or URLs never reach a URL template
    "ytid_option": (row(ytid="--exec=rm -rf"), "ytid"),
    "ytid_output": (row(ytid="-o/etc/xxxx"), "ytid"),
    "ytid_url": (row(ytid="https://evil.example/x"), "ytid"),
    "ytid_unicode": (row(ytid="abcdéfghijk"), "ytid"),
    "start_nan": (row(start_s="NaN"), "start_s"),
    "start_inf": (row(start_s="inf"), "start_s"),
    "end_inf": (row(end_s="Infinity"), "end_s"),
    "start_negative": (row(start_s="-5"), "start_s"),
    "end_huge": (row(end_s="1e308"), "end_s"),
    "nul_in_caption": (row(caption="a\x00b"), "caption"),
    "huge_caption": (row(caption="x" * 10_000_000), "caption"),
    "aspect_code": (row(aspect_list="[__import__('os').system('touch /tmp/pwned')]"), "aspect_list"),
    "aspect_deep": (row(aspect_list="[" * 100_000), "aspect_list"),
    "bool_word": (row(is_audioset_eval="yes please"), "is_audioset_eval"),
    "author_text": (row(author_id="=1+1"), "author_id"),
}
GOOD_ROWS = [
    row(ytid="goodrow0001", caption="=cmd|' /C calc'!A0 formula injection stays text"),
    row(ytid="goodrow0002", caption="ünïcödé ✓ 音楽 🎵", aspect_list="['ünïcödé', '音楽']"),
    row(ytid="goodrow0003", start_s="30", end_s="40"),
]


def test_hostile_rows_rejected_good_rows_kept(tmp_path):
    rows = [r for r, _ in HOSTILE_ROWS.values()] + GOOD_ROWS
    res = load_musiccaps(write(tmp_path, rows))
    assert res.rows_read == len(rows)
    assert [c.ytid for c in res.clips] == ["goodrow0001", "goodrow0002", "goodrow0003"]
    assert res.clips[0].caption.startswith("=cmd|")  # kept verbatim as data, never interpreted
    fields = [r.field for r in res.rejects]
    assert fields == [f for _, f in HOSTILE_ROWS.values()]
    for r in res.rejects:
        assert len(r.value) < 300  # huge values are abbreviated in the report
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_bom_and_line_endings(tmp_path, newline):
    p = write(tmp_path, GOOD_ROWS, encoding="utf-8-sig", newline=newline)
    assert len(load_musiccaps(p).clips) == 3


def test_wrong_encodings(tmp_path):
    with pytest.raises(SourceError, match="UTF-16"):
        load_musiccaps(write(tmp_path, GOOD_ROWS, encoding="utf-16"))
    # latin-1 bytes in one row: that row is rejected, the others kept
    p = tmp_path / "latin1.csv"
    p.write_bytes(
        open(write(tmp_path, GOOD_ROWS[:1]), "rb").read()
        + "latin1rowxx,0,10,,['a'],café,1,False,False\r\n".encode("latin-1")
    )
    res = load_musiccaps(p)
    assert [c.ytid for c in res.clips] == ["goodrow0001"]
    assert res.rejects[0].field == "caption" and "UTF-8" in res.rejects[0].reason


def test_wrong_and_missing_columns(tmp_path):
    p = tmp_path / "cols.csv"
    p.write_text("ytid,start,end\nabcdefghijk,0,10\n")
    with pytest.raises(SourceError, match="missing column"):
        load_musiccaps(p)
    # extra columns and a different order are fine
    cols = ["extra", *reversed(COLUMNS)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    w.writerow(["zzz", *reversed(row())])
    p.write_text(buf.getvalue())
    assert [c.ytid for c in load_musiccaps(p).clips] == ["abcdefghijk"]


def test_cli_rejects_file_and_exit_codes(tmp_path):
    rows = [r for r, _ in HOSTILE_ROWS.values()] + GOOD_ROWS
    p = write(tmp_path, rows)
    out = tmp_path / "rejects.jsonl"
    res = CliRunner().invoke(app, ["musiccaps", "validate", p, "--json", "--rejects", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["valid"] == 3 and summary["rejected"] == len(HOSTILE_ROWS)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["row"] for x in lines] == list(range(1, len(HOSTILE_ROWS) + 1))
    again = CliRunner().invoke(app, ["musiccaps", "validate", p, "--json", "--rejects", str(out)])
    assert again.exit_code == 0 and out.read_text().splitlines() == [json.dumps(x, ensure_ascii=False) for x in lines]
