"""assignments.jsonl: the audit's per-clip groups as every group breakdown reads them back."""

from __future__ import annotations

import json

import pytest

from cadenza.audit.taxonomy_file import load_taxonomy
from cadenza.formats.assignments import ASSIGNMENTS_FILE, load_assignments, write_assignments
from cadenza.musiccaps.schema import ClipRecord


def _clip(ytid: str, start: float, caption: str, author: int) -> ClipRecord:
    return ClipRecord(ytid=ytid, start_s=start, end_s=start + 10, audioset_labels=(), aspect_list=(),
                      caption=caption, author_id=author, is_balanced_subset=False, is_audioset_eval=True)


def test_one_record_per_ytid_with_every_window(tmp_path):
    clips = [
        _clip("aaaaaaaaaaa", 0, "A sitar raga from India with tabla.", 1),
        _clip("aaaaaaaaaaa", 10, "A rock song with electric guitar.", 1),
        _clip("bbbbbbbbbbb", 30, "A calm piano piece.", 2),
    ]
    assignments = load_taxonomy().assign_all(clips)
    write_assignments(tmp_path, (a.to_dict() for a in assignments))
    lines = (tmp_path / ASSIGNMENTS_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == [c.key for c in clips]
    assert not list(tmp_path.glob("*.tmp"))

    loaded = load_assignments(tmp_path)
    assert set(loaded) == {"aaaaaaaaaaa", "bbbbbbbbbbb"}
    first = loaded["aaaaaaaaaaa"]
    assert first["windows"] == [clips[0].key, clips[1].key]
    # the first window's record stands for the ytid
    assert first["key"] == clips[0].key and first["groups"] == assignments[0].groups
    assert first["groups"]["region"] != ["unspecified"] and first["rollup"] == assignments[0].rollup
    assert loaded["bbbbbbbbbbb"]["author_id"] == 2 and loaded["bbbbbbbbbbb"]["windows"] == [clips[2].key]


def test_a_missing_or_broken_file_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `cadenza audit` first"):
        load_assignments(tmp_path)
    (tmp_path / ASSIGNMENTS_FILE).write_text('{"ytid": "a", "key": "a_0"}\n\n{not json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 3: not JSON"):
        load_assignments(tmp_path)
