"""The cultural-bias audit: coverage, description, annotator confounding, survival, rebalancing.

`run_audit(AuditConfig)` reads the CSV (and optionally the ontology, an ingest dir or a list of
available ytids), assigns every clip to groups with the taxonomy, computes every figure, and writes
metrics.json, assignments.jsonl, report.html, report.md and the plots into `out`.
The metrics schema is documented in cadenza/audit/report.py (METRICS_SCHEMA).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadenza.audit.analysis import (
    annotator_profiles,
    apply_fdr,
    associations,
    coverage,
    numeric_by_group,
    rollup_summary,
    survival_by_group,
)
from cadenza.audit.findings import build_findings
from cadenza.audit.groupings import GROUPINGS, REGION_RULES
from cadenza.audit.sensitivity import region_sensitivity
from cadenza.audit.taxonomy import Assignment, Taxonomy
from cadenza.audit.taxonomy_file import load_taxonomy
from cadenza.common.config import StageConfig
from cadenza.formats.assignments import write_assignments

METRICS_SCHEMA_VERSION = 1


@dataclass
class AuditConfig(StageConfig):
    csv: str
    out: str
    ontology: str | None = None
    ingest: str | None = None  # ingest output dir: completed shards = survived, failures = lost
    available: str | None = None  # or: a file of available ytids
    group_by: str = "region"  # the grouping the rebalancing weights flatten
    weights_out: str | None = None  # .json or .parquet
    cap: float = 5.0  # no clip is sampled more than cap x its unweighted rate
    balance_annotators: bool = False  # weights also give every annotator an equal share
    taxonomy: str | None = None  # a taxonomy YAML; default: the packaged one
    alpha: float = 0.05  # false discovery rate for every family of tests
    min_group: int = 10  # groups with fewer clips are reported but not tested
    underrep_fraction: float = 0.5  # roll-up alert: CI upper bound below this x the reference share
    region_evidence: str = "both"  # which region evidence counts: explicit | origin | both
    rarely_stated: float = 0.3  # a grouping with evidence for fewer clips than this is context, never coverage
    plots: bool = True

    def __post_init__(self) -> None:
        if self.group_by not in GROUPINGS:
            raise ValueError(f"group_by must be one of {', '.join(GROUPINGS)} (got {self.group_by!r})")
        if self.ingest and self.available:
            raise ValueError("give either ingest or available, not both")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1) (got {self.alpha})")
        if self.region_evidence not in REGION_RULES:
            raise ValueError(f"region_evidence must be one of {', '.join(REGION_RULES)} (got {self.region_evidence!r})")
        if self.min_group < 1:
            raise ValueError(f"min_group must be at least 1 (got {self.min_group})")


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def audit_assignments(
    all_evidence: list[Assignment], taxonomy: Taxonomy, config: AuditConfig, survival=None
) -> tuple[dict[str, Any], list[Assignment]]:
    """Every figure of the audit for clips assigned with every kind of region evidence (no I/O).

    Returns the metrics and the assignments under config.region_evidence, which every figure but the
    rule comparison uses."""
    from cadenza.audit.weights import annotator_shares, flatten_weights, primary_groups, weighted_shares

    assignments = [taxonomy.region_view(a, config.region_evidence) for a in all_evidence]
    metrics: dict[str, Any] = {"schema_version": METRICS_SCHEMA_VERSION, "clips": len(assignments)}
    metrics["groupings"] = {
        g: {
            "description": taxonomy.groupings[g].get("description", ""),
            "groups": {k: taxonomy.group_label(g, k) for k in taxonomy.groupings[g]["groups"]},
        }
        for g in GROUPINGS
    }
    metrics["coverage"] = {g: coverage(assignments, taxonomy, g) for g in (*GROUPINGS, "rollup")}
    metrics["rollup"] = rollup_summary(assignments, taxonomy)
    metrics["region_rule"] = region_sensitivity(all_evidence, taxonomy, config.region_evidence)
    desc = associations(assignments, taxonomy, config.min_group)
    metrics["description"] = desc
    metrics["numeric_by_group"] = {g: numeric_by_group(assignments, g) for g in GROUPINGS}
    metrics["annotators"] = annotator_profiles(assignments, taxonomy, config.min_group)
    metrics["survival"] = survival_by_group(assignments, survival, config.min_group) if survival else None
    metrics["tests"] = {
        "count": apply_fdr(metrics, config.alpha),
        "alpha": config.alpha,
        "correction": "Benjamini-Hochberg over every test that can raise an alert",
    }
    weights = flatten_weights(assignments, config.group_by, config.cap, config.balance_annotators)
    before = weighted_shares(assignments, config.group_by, [1.0] * len(assignments))
    after = weighted_shares(assignments, config.group_by, weights)
    ess = sum(weights) ** 2 / sum(w * w for w in weights) if weights else 0.0
    metrics["weights"] = {
        "grouping": config.group_by,
        "cap": config.cap,
        "min": min(weights, default=1.0),
        "max": max(weights, default=1.0),
        "effective_sample_size": ess,
        "shares_before": before,
        "shares_after": after,
        "balance_annotators": config.balance_annotators,
        "annotator_shares_before": annotator_shares(assignments, [1.0] * len(assignments)),
        "annotator_shares_after": annotator_shares(assignments, weights),
        "file": config.weights_out,
    }
    metrics["_weights"] = weights  # popped by run_audit before writing
    metrics["_primary"] = primary_groups(assignments, config.group_by)
    metrics["findings"] = build_findings(metrics, taxonomy, config)
    return metrics, assignments


def run_audit(config: AuditConfig) -> dict[str, Any]:
    """Audit a MusicCaps CSV; write metrics.json, assignments.jsonl, report.html, report.md, *.png."""
    from cadenza.audit.report import write_reports
    from cadenza.audit.survival import survival_from_available, survival_from_ingest
    from cadenza.audit.weights import weights_by_ytid, write_weights
    from cadenza.musiccaps.csvload import load_musiccaps
    from cadenza.musiccaps.ontology import load_ontology

    t0 = time.perf_counter()
    result = load_musiccaps(config.csv)
    ontology = load_ontology(config.ontology) if config.ontology else None
    taxonomy = load_taxonomy(config.taxonomy)
    clips = result.clips
    if not clips:
        from cadenza.common.sources import SourceError

        raise SourceError(f"{config.csv}: no valid rows to audit ({len(result.rejects)} rejected: "
                          f"{result.rejects_by_reason()})")
    survival = None
    if config.ingest:
        survival = survival_from_ingest(config.ingest, clips)
    elif config.available:
        survival = survival_from_available(config.available, clips)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics, assignments = audit_assignments(taxonomy.assign_all(clips, ontology), taxonomy, config, survival)
    write_assignments(out, (a.to_dict() for a in assignments))
    weights = metrics.pop("_weights")
    primary = metrics.pop("_primary")
    if config.weights_out:
        by_ytid = weights_by_ytid(assignments, weights)
        groups = {a.clip.ytid: g for a, g in zip(assignments, primary, strict=True)}
        write_weights(config.weights_out, config.group_by, config.cap, by_ytid, groups)
    metrics["source"] = {
        "csv": str(config.csv),
        "rows_read": result.rows_read,
        "valid": len(clips),
        "rejected": len(result.rejects),
        "rejected_by_reason": result.rejects_by_reason(),
        "ontology": config.ontology,
        "labels_used": ontology is not None,
        "taxonomy": taxonomy.source,
        "survival_source": None if survival is None else {"kind": survival.kind, "path": survival.source},
    }
    metrics["config"] = config.to_dict()
    metrics["timing_s"] = {"analysis": time.perf_counter() - t0}
    write_reports(out, metrics, assignments, taxonomy, plots=config.plots)
    metrics["timing_s"]["total"] = time.perf_counter() - t0
    (out / "metrics.json").write_text(
        json.dumps(_json_safe(metrics), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return metrics
