"""Load and validate the MusicCaps CSV: every data row becomes a ClipRecord or a Reject.

Nothing in a row is ever evaluated: aspect lists are parsed by a small grammar for a list of
quoted strings, never by eval().
"""

from __future__ import annotations

import ast
import csv
import io
import math
import os
import re

from cadenza.common.sources import SourceError, resolve_source
from cadenza.formats.defaults import MUSICCAPS_CSV_URL
from cadenza.musiccaps.schema import CSV_COLUMNS, MID_RE, YTID_RE, ClipRecord, Reject, ValidationResult, clip_key

MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 60.0
MAX_FIELD_CHARS = 20_000  # a caption is a paragraph; anything longer is not a caption
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_QUOTED = re.compile(r"""\s*('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")\s*(,|\])""", re.S)

_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that surrogateescape kept from invalid UTF-8

csv.field_size_limit(64 * 1024 * 1024)  # so a huge field becomes a reject, not a csv.Error for the file


class RowError(ValueError):
    def __init__(self, field: str, value: str, reason: str):
        super().__init__(reason)
        self.field, self.value, self.reason = field, value, reason


def parse_aspect_list(text: str) -> tuple[str, ...]:
    """Parse "['a', \"b's\"]" into ('a', "b's"); raises ValueError on anything else."""
    s = text.strip()
    if not s.startswith("["):
        raise ValueError("not a list: expected '[' first")
    if re.fullmatch(r"\[\s*\]", s):
        return ()
    items: list[str] = []
    pos = 1
    while True:
        m = _QUOTED.match(s, pos)
        if not m:
            raise ValueError(f"not a list of quoted strings (at character {pos})")
        quoted = m.group(1)
        # a single quoted literal: literal_eval cannot run code, it only decodes the escapes
        items.append(quoted[1:-1] if "\\" not in quoted else ast.literal_eval(quoted))
        pos = m.end()
        if m.group(2) == "]":
            break
    if s[pos:].strip():
        raise ValueError("unexpected text after the closing ']'")
    return tuple(items)


def _parse_float(field: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise RowError(field, value, "not a number") from None
    if not math.isfinite(x):
        raise RowError(field, value, "not a finite number")
    return x


def _parse_bool(field: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise RowError(field, value, "not a boolean (expected True or False)")


def _parse_row(values: dict[str, str], row: int) -> ClipRecord:
    for name, value in values.items():
        if "\x00" in value:
            raise RowError(name, value, "contains a NUL byte")
        if _UNDECODABLE.search(value):
            raise RowError(name, value, "not valid UTF-8")
        if len(value) > MAX_FIELD_CHARS:
            raise RowError(name, value, f"field too long ({len(value)} characters > {MAX_FIELD_CHARS})")
    ytid = values["ytid"].strip()
    if not YTID_RE.match(ytid):
        raise RowError("ytid", ytid, "not a YouTube id (11 characters of A-Za-z0-9_-)")
    start = _parse_float("start_s", values["start_s"])
    end = _parse_float("end_s", values["end_s"])
    if start < 0:
        raise RowError("start_s", values["start_s"], "negative start")
    if not start < end:
        raise RowError("end_s", values["end_s"], f"window is empty: start_s={start:g} >= end_s={end:g}")
    if not MIN_WINDOW_S <= end - start <= MAX_WINDOW_S:
        raise RowError(
            "end_s", values["end_s"], f"window length {end - start:g} s outside [{MIN_WINDOW_S:g}, {MAX_WINDOW_S:g}]"
        )
    labels = tuple(x.strip() for x in values["audioset_positive_labels"].split(",") if x.strip())
    for mid in labels:
        if not MID_RE.match(mid):
            raise RowError("audioset_positive_labels", mid, "not an AudioSet MID (like /m/04rlf)")
    try:
        aspects = parse_aspect_list(values["aspect_list"])
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise RowError("aspect_list", values["aspect_list"], f"unparsable aspect list: {exc}") from None
    caption = values["caption"].strip()
    if not caption:
        raise RowError("caption", values["caption"], "missing caption")
    try:
        author = int(values["author_id"])
    except ValueError:
        raise RowError("author_id", values["author_id"], "not an integer annotator id") from None
    if author < 0:
        raise RowError("author_id", values["author_id"], "negative annotator id")
    return ClipRecord(
        ytid=ytid,
        start_s=start,
        end_s=end,
        audioset_labels=labels,
        aspect_list=aspects,
        caption=caption,
        author_id=author,
        is_balanced_subset=_parse_bool("is_balanced_subset", values["is_balanced_subset"]),
        is_audioset_eval=_parse_bool("is_audioset_eval", values["is_audioset_eval"]),
        row=row,
    )


def _clip(value: str, n: int = 200) -> str:
    return value if len(value) <= n else value[:n] + f"... ({len(value)} characters)"


def parse_musiccaps(text: str, source: str = "<text>") -> ValidationResult:
    """Validate MusicCaps CSV text (LF or CRLF). Raises SourceError only if there is no usable header."""
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    result = ValidationResult(source=source)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise SourceError(f"{source}: empty file, expected a MusicCaps CSV header") from None
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise SourceError(f"{source}: not a MusicCaps CSV: missing column(s) {', '.join(missing)}")
    index = {name: header.index(name) for name in CSV_COLUMNS}
    seen: dict[str, int] = {}
    row = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # only on malformed quoting that strict=False still refuses
            row += 1
            result.rejects.append(Reject(row, reader.line_num, "<row>", "", f"malformed CSV: {exc}"))
            continue
        if not fields or fields == [""]:
            continue  # blank line: not a row
        row += 1
        line = reader.line_num
        if len(fields) != len(header):
            ytid = fields[index["ytid"]] if len(fields) > index["ytid"] else ""
            result.rejects.append(
                Reject(row, line, "<row>", _clip(",".join(fields)),
                       f"wrong number of fields: {len(fields)}, expected {len(header)} (truncated or broken row)",
                       ytid=_clip(ytid, 40))
            )
            continue
        values = {name: fields[i] for name, i in index.items()}
        try:
            clip = _parse_row(values, row)
        except RowError as exc:
            result.rejects.append(
                Reject(row, line, exc.field, _clip(exc.value), exc.reason, ytid=_clip(values["ytid"], 40))
            )
            continue
        key = clip_key(clip.ytid, clip.start_s, clip.end_s)
        if key in seen:
            result.rejects.append(
                Reject(row, line, "ytid", clip.ytid, f"duplicate: same ytid and window as row {seen[key]}",
                       ytid=clip.ytid)
            )
            continue
        seen[key] = row
        result.clips.append(clip)
    return result


def load_musiccaps(spec: str | os.PathLike[str] = MUSICCAPS_CSV_URL) -> ValidationResult:
    """Load and validate the MusicCaps CSV from a local path or URL (downloaded once, cached)."""
    path = resolve_source(spec, what="the MusicCaps CSV")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(f"{spec}: the file is UTF-16 encoded; save it as UTF-8 (the MusicCaps CSV is UTF-8)")
    # surrogateescape keeps undecodable bytes visible so the row holding them is rejected, not the file
    return parse_musiccaps(raw.decode("utf-8", errors="surrogateescape"), source=str(spec))
