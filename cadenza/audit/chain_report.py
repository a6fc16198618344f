"""How each culture fares along the whole chain, on one page: dataset share -> download survival -> codec
reconstruction -> model quality, per region, roll-up and genre group.

Reads only the JSON the stages write (the audit's metrics.json, the codec evaluation's metrics.json and
the model evaluation's metrics.json), so it imports no engine or model. The codec and model evaluations
are optional and read defensively: a missing directory, file or key is shown as "not run" with the
reason, never an error. A value is a number, or {"mean", "ci_low", "ci_high", "n", ["flag"]}; a group
is flagged when the producing stage flagged it (codec eval: in the columns of the distances in its
`worse_on`), or when its 95% CI lies entirely on the worse side of
the value over all clips.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza.audit.stats import pct

CHAIN_GROUPINGS = ("rollup", "region", "genre")
CODEC_METRICS = {  # metric -> whether higher is better
    "log_mel_l1": False,
    "stft_distance": False,
    "si_snr": True,
    "mel_distance": False,
}
# model-evaluation metric -> (column title, higher is better, keys it may be written under)
EVAL_METRICS = {
    "nll_semantic": ("Held-out NLL, semantic (nats/token)", False, ("nll_semantic",)),
    "nll_acoustic": ("Held-out NLL, acoustic (nats/token)", False, ("nll_acoustic",)),
    "caption_gain": ("Caption gain (nats/token)", True, ("caption_gain", "caption_gain_nats")),
    "prompt_adherence": ("Prompt adherence", True, ("prompt_adherence", "adherence")),
    "mainstream_pull": ("Pull toward the mainstream", False, ("mainstream_pull", "pull_to_mainstream")),
}


class ChainInputError(ValueError):
    """The audit directory cannot be read; the message names the file and what to do."""


@dataclass
class Column:
    """One link of the chain: where it comes from, whether it ran, and its value per grouping and group."""

    key: str
    title: str
    stage: str  # "audit" | "codec eval" | "evaluation"
    higher_is_better: bool | None  # None: no direction (dataset share)
    status: str = "ok"  # "ok" or "not run: <why>"
    overall: float | None = None
    cells: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # grouping -> group -> cell

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "stage": self.stage,
            "higher_is_better": self.higher_is_better,
            "status": self.status,
            "overall": self.overall,
            "cells": self.cells,
        }


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(document, "") or (None, why not)."""
    if not path.is_file():
        return None, f"no {path.name} in {path.parent}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{path} is not readable JSON ({exc.__class__.__name__})"
    if not isinstance(doc, dict):
        return None, f"{path} is not a JSON object"
    return doc, ""


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def measure(x: Any) -> dict[str, Any] | None:
    """A number, or {"mean"|"value", "ci_low", "ci_high", "n", "flag"}, as a cell; None when neither."""
    if (v := _finite(x)) is not None:
        return {"value": v, "ci": None, "n": None, "flag": False}
    if not isinstance(x, dict):
        return None
    if isinstance(x.get("semantic"), dict):  # the evaluation's caption gain: the semantic stage's, where text acts
        x = x["semantic"]
    v = _finite(x.get("mean", x.get("value", x.get("gain", x.get("accuracy")))))
    if v is None:
        return None
    ci95 = x.get("ci95") if isinstance(x.get("ci95"), list | tuple) and len(x.get("ci95")) == 2 else [None, None]
    lo, hi = _finite(x.get("ci_low", ci95[0])), _finite(x.get("ci_high", ci95[1]))
    n = x.get("n")
    return {
        "value": v,
        "ci": [lo, hi] if lo is not None and hi is not None else None,
        "n": n if isinstance(n, int) and not isinstance(n, bool) else None,
        "flag": bool(x.get("flag", False)),
    }


def _flag_by_ci(cells: dict[str, dict[str, Any]], overall: float | None, higher_is_better: bool | None) -> None:
    """Flag a cell whose CI lies wholly on the worse side of the overall value (unless the stage flagged it)."""
    if overall is None or higher_is_better is None:
        return
    for cell in cells.values():
        ci = cell.get("ci")
        if ci and not cell["flag"]:
            cell["flag"] = ci[1] < overall if higher_is_better else ci[0] > overall


def audit_columns(audit: dict[str, Any]) -> list[Column]:
    share = Column("share", "Share of the dataset", "audit", None)
    for grouping in CHAIN_GROUPINGS:
        cov = (audit.get("coverage") or {}).get(grouping) or {}
        share.cells[grouping] = {
            r["group"]: {"value": r["share"], "ci": r["ci"], "n": r["count"], "flag": False}
            for r in cov.get("rows", [])
        }
    ref = ((audit.get("rollup") or {}).get("reference_share") or {}).get("global_south")
    south = share.cells.get("rollup", {}).get("global_south")
    if ref and south:  # the one share with a stated reference: world population
        rollup = audit["rollup"]
        high = _finite(rollup.get("global_south_any_ci", [0, 1])[1])  # null: no clip has region evidence
        south["flag"] = high is not None and high < ref
    survival = Column("survival", "Download survival", "audit", True)
    s = audit.get("survival")
    if not s:
        survival.status = "not run: the audit had no --ingest or --available"
    else:
        survival.overall = s.get("overall_rate")
        for grouping in CHAIN_GROUPINGS:
            survival.cells[grouping] = {
                r["group"]: {
                    "value": r["rate"],
                    "ci": r["ci"],
                    "n": r["survived"] + r["lost"],
                    "flag": bool(r.get("significant")) and r["rate"] < (survival.overall or 0),
                }
                for r in s.get("by_grouping", {}).get(grouping, [])
                if r["survived"] + r["lost"] > 0
            }
    return [share, survival]


def codec_columns(codec_dir: str | None) -> list[Column]:
    if not codec_dir:
        return [Column("codec", "Codec reconstruction", "codec eval", None, status="not run: no --codec-eval given")]
    doc, why = _read_json(Path(codec_dir) / "metrics.json")
    by_group = (doc or {}).get("by_group")
    if doc is None or not isinstance(by_group, dict):
        why = why or f"{codec_dir}/metrics.json has no by_group table"
        return [Column("codec", "Codec reconstruction", "codec eval", None, status=f"not run: {why}")]
    found = [m for m in CODEC_METRICS if any(
        isinstance(row, dict) and m in row
        for table in by_group.values() if isinstance(table, dict) for row in table.values()
    )]
    if not found:
        return [Column("codec", "Codec reconstruction", "codec eval", None,
                       status=f"not run: {codec_dir}/metrics.json has none of {', '.join(CODEC_METRICS)}")]
    columns = []
    for metric in found:
        col = Column(f"codec_{metric}", f"Codec reconstruction: {metric}", "codec eval", CODEC_METRICS[metric])
        overall = measure(((doc.get("overall") or {}) if isinstance(doc.get("overall"), dict) else {}).get(metric))
        col.overall = overall["value"] if overall else None

        def codec_cell(row: dict[str, Any], metric: str = metric) -> dict[str, Any] | None:
            cell = measure(row.get(metric))
            if cell is not None:  # the group's flag covers the distances it is worse on, each column its own
                worse_on = row.get("worse_on")
                cell["flag"] = cell["flag"] or (isinstance(worse_on, list) and metric in worse_on)
            return cell

        _fill_cells(col, by_group, codec_cell)
        columns.append(col)
    return columns


def _fill_cells(col: Column, by_group: dict[str, Any],
                cell_of: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """col.cells from a per-grouping table of rows: `cell_of(row)` for each group, then flags by CI."""
    for grouping in CHAIN_GROUPINGS:
        table = by_group.get(grouping)
        if not isinstance(table, dict):
            continue
        cells = {}
        for group, row in table.items():
            cell = cell_of(row) if isinstance(row, dict) else None
            if cell is not None:
                cells[str(group)] = cell
        _flag_by_ci(cells, col.overall, col.higher_is_better)
        col.cells[grouping] = cells


def _lookup(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for where in (row, row.get("generated"), row.get("metrics")):
        if isinstance(where, dict):
            for k in keys:
                if k in where:
                    return where[k]
    return None


def eval_columns(eval_dir: str | None) -> list[Column]:
    columns = [Column(k, title, "evaluation", hib) for k, (title, hib, _) in EVAL_METRICS.items()]
    doc, why = (None, "no --eval given") if not eval_dir else _read_json(Path(eval_dir) / "metrics.json")
    by_group = (doc or {}).get("by_group")
    if doc is not None and not isinstance(by_group, dict):
        why = f"{eval_dir}/metrics.json has no by_group table (evaluate without --audit)"
    for col in columns:
        keys = EVAL_METRICS[col.key][2]
        if not isinstance(by_group, dict):
            col.status = f"not run: {why}"
            continue
        overall = measure(_lookup(doc.get("nll") or {}, keys)) or measure(_lookup(doc, keys))
        col.overall = overall["value"] if overall else None

        def eval_cell(row: dict[str, Any], keys: tuple[str, ...] = keys) -> dict[str, Any] | None:
            cell = measure(_lookup(row, keys))
            if cell is not None and cell["n"] is None and isinstance(row.get("clips_heldout"), int):
                cell["n"] = row["clips_heldout"]
            return cell

        _fill_cells(col, by_group, eval_cell)
        if not any(col.cells.values()):
            col.cells = {}
            col.status = f"not run: {eval_dir}/metrics.json reports no {col.key} per group"
    return columns


def build_chain(audit_dir: str, codec_dir: str | None = None, eval_dir: str | None = None) -> dict[str, Any]:
    """The chain table: groups per grouping (with labels) and one column per link."""
    audit, why = _read_json(Path(audit_dir) / "metrics.json")
    if audit is None:
        raise ChainInputError(f"--audit {audit_dir}: {why}; run `cadenza audit --out {audit_dir}` first")
    if "coverage" not in audit:
        raise ChainInputError(f"--audit {audit_dir}: metrics.json is not a cadenza audit (no coverage)")
    columns = [*audit_columns(audit), *codec_columns(codec_dir), *eval_columns(eval_dir)]
    labels: dict[str, dict[str, str]] = {
        g: dict((audit.get("groupings") or {}).get(g, {}).get("groups", {})) for g in ("region", "genre")
    }
    labels["rollup"] = {"global_north": "Global North", "global_south": "Global South", "mixed": "Both"}
    groups: dict[str, list[str]] = {}
    for grouping in CHAIN_GROUPINGS:
        order = [r["group"] for r in audit["coverage"].get(grouping, {}).get("rows", [])]
        extra = sorted({g for c in columns for g in c.cells.get(grouping, {})} - set(order))
        groups[grouping] = order + extra
    rule = (audit.get("region_rule") or {}).get("rule", (audit.get("config") or {}).get("region_evidence", "both"))
    return {
        "audit": str(audit_dir),
        "codec_eval": codec_dir,
        "eval": eval_dir,
        "clips": audit.get("clips"),
        "region_evidence": rule,
        "groups": groups,
        "labels": labels,
        "columns": [c.to_dict() for c in columns],
    }


def _cell_text(cell: dict[str, Any] | None, share: bool) -> str:
    if cell is None:
        return "-"
    fmt = pct if share else (lambda v: f"{v:.3g}")
    text = fmt(cell["value"])
    if cell.get("ci"):
        text += f" [{fmt(cell['ci'][0])}, {fmt(cell['ci'][1])}]"
    if cell.get("n") is not None:
        text += f" n={cell['n']}"
    return text + (" WORSE" if cell.get("flag") else "")


def render_chain_html(chain: dict[str, Any], pngs: dict[str, bytes]) -> str:
    from cadenza.audit.report_html import CSS, ERROR_JS, IMAGES_CHECK_JS, SORT_JS, esc, figure, table

    status_rows = [[c["title"], c["stage"], c["status"]] for c in chain["columns"]]
    ran = [c for c in chain["columns"] if c["status"] == "ok"]
    not_run = ", ".join(c["title"] for c in chain["columns"] if c["status"] != "ok")
    missing = f"<p class=small>Not run (see the links above): {esc(not_run)}.</p>" if not_run else ""
    sections = []
    for grouping in CHAIN_GROUPINGS:
        labels = chain["labels"].get(grouping, {})
        rows = []
        for g in chain["groups"][grouping]:
            row = [labels.get(g, g)]
            for c in ran:
                row.append(_cell_text(c["cells"].get(grouping, {}).get(g), share=c["key"] in ("share", "survival")))
            rows.append(row)
        name = f"chain_{grouping}.png"
        caption = f"the chain by {grouping}: 95% CI, orange where worse than the rest, dashed line over all clips"
        fig = figure(name, pngs[name], caption) if name in pngs else ""
        sections.append(
            f'<h2 id="chain-{grouping}">By {esc(grouping)}</h2>{fig}'
            + table([grouping, *(c["title"] for c in ran)], rows, sortable=True, attrs=f' id="table-{grouping}"')
            + missing
        )
    inputs = [["audit", chain["audit"]], ["codec eval", chain["codec_eval"] or "not given"],
              ["evaluation", chain["eval"] or "not given"]]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cadenza: the chain per culture</title>
<style>{CSS}table.sortable td{{white-space:nowrap}}</style><script>{ERROR_JS}</script></head><body>
<h1>How each culture fares along the chain</h1>
<p>From the dataset to the model, per Global North/South roll-up, region and genre group: share of the dataset,
download survival, codec reconstruction, and the trained model's quality. Every value has its 95% CI where the
stage reports one; <b>WORSE</b> (orange in the plots) marks a group the stage flagged, or whose CI lies wholly on
the worse side of the value over all clips (survival: lower than the overall rate after Benjamini-Hochberg; share:
only the Global South roll-up, against world population). Region evidence rule of the audit:
<b>{esc(chain["region_evidence"])}</b>; {esc(chain["clips"])} clips audited.</p>
{table(["input", "directory"], inputs)}
<h2 id="links">Links of the chain</h2>{table(["link", "from", "status"], status_rows, attrs=' id="links-table"')}
{"".join(sections)}
<script>{SORT_JS}{IMAGES_CHECK_JS}</script>
</body></html>
"""


def write_chain_report(
    audit_dir: str, out_dir: str, codec_dir: str | None = None, eval_dir: str | None = None, plots: bool = True
) -> dict[str, Any]:
    """Write OUT/chain.html (self-contained) and OUT/chain.json; returns the chain table."""
    from cadenza.formats.storage import write_bytes_atomic, write_json_atomic

    chain = build_chain(audit_dir, codec_dir, eval_dir)
    pngs: dict[str, bytes] = {}
    if plots:
        from cadenza.audit.plots import chain_panels

        pngs = {f"chain_{g}.png": chain_panels(chain, g) for g in CHAIN_GROUPINGS}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(str(out / "chain.json"), chain)
    write_bytes_atomic(str(out / "chain.html"), render_chain_html(chain, pngs).encode("utf-8"))
    chain["html"] = str(out / "chain.html")
    return chain
