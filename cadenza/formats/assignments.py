"""The audit's assignments.jsonl: one line per clip, written by the audit and read by everything that breaks
a figure down by audit group (codec eval, evaluate, the annotator hold-out of the training split).

A line is {"ytid", "key", "row", "author_id", "groups": {grouping: [groups]}, "rollup", "evidence",
"descriptors"} (cadenza.audit.taxonomy.Assignment.to_dict); the README's output table documents it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ASSIGNMENTS_FILE = "assignments.jsonl"


def write_assignments(audit_dir: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """AUDIT_DIR/assignments.jsonl, through a temporary sibling renamed over it (an interrupt leaves the
    old file or the new one, never half of one)."""
    path = Path(audit_dir) / ASSIGNMENTS_FILE
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_assignments(audit_dir: str | Path) -> dict[str, dict[str, Any]]:
    """ytid -> its assignments.jsonl record, {"groups": {grouping: [groups]}, "rollup", "author_id", ...}.

    A ytid with several windows keeps its first window's record; "windows" lists the clip keys of all of them.
    """
    path = Path(audit_dir) / ASSIGNMENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audit assignments not found (run `cadenza audit` first)")
    out: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}: line {lineno}: not JSON: {exc}") from exc
            first = out.setdefault(rec["ytid"], {**rec, "windows": []})
            first["windows"].append(rec["key"])
    return out
