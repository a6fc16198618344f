"""`cadenza audit`: cultural-bias audit of a MusicCaps copy (library: cadenza.audit)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from cadenza.cli import checks
from cadenza.formats.assignments import ASSIGNMENTS_FILE


class RegionEvidence(StrEnum):
    explicit = "explicit"
    origin = "origin"
    both = "both"


class GroupBy(StrEnum):
    region = "region"
    genre = "genre"
    instrument = "instrument"
    language = "language"
    vocal_gender = "vocal_gender"


def audit(
    csv: str = typer.Option(..., "--csv", help="MusicCaps CSV: a local path or an http(s) URL (downloaded once)."),
    out: Path = typer.Option(
        ..., "--out", help=f"Output dir: metrics.json, report.html, report.md, *.png, {ASSIGNMENTS_FILE}."
    ),
    ontology: str | None = typer.Option(
        None, help="AudioSet ontology.json (path or URL). Without it AudioSet labels are not used as evidence."
    ),
    ingest: str | None = typer.Option(
        None, help="Ingest output dir: clips in completed shards survived, FailureRecords were lost."
    ),
    available: Path | None = typer.Option(
        None, help="Instead of --ingest: a file of available ytids (one per line, or a JSON list)."
    ),
    group_by: GroupBy = typer.Option(GroupBy.region, "--group-by", help="Grouping the rebalancing weights flatten."),
    weights_out: Path | None = typer.Option(
        None, "--weights-out", help="Write per-ytid sampling weights here (.json, or .parquet) for the trainer."
    ),
    cap: float = typer.Option(5.0, help="No clip is sampled more than CAP x its unweighted rate (>= 1)."),
    balance_annotators: bool = typer.Option(
        False, "--balance-annotators", help="Weights also give every annotator an equal share (raking), within CAP."
    ),
    taxonomy: Path | None = typer.Option(None, help="Taxonomy YAML to use instead of the packaged one."),
    alpha: float = typer.Option(0.05, help="False discovery rate (Benjamini-Hochberg), in [0.0001, 0.5]."),
    region_evidence: RegionEvidence = typer.Option(
        RegionEvidence.both,
        "--region-evidence",
        help="Which region evidence counts: explicit (named cultures, countries, languages, instruments, "
        "traditions), origin (globalized genres mapped to where they began, e.g. rock -> North America and "
        "Europe), or both. The report gives the headline under explicit and both either way.",
    ),
    min_group_size: int = typer.Option(
        10,
        "--min-group-size",
        help="Minimum clips in a group or annotator (and in the rest) for any test; smaller ones are reported, "
        "not tested (>= 1).",
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots (the HTML then has none)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out that is not an audit dir."),
) -> None:
    """Audit who is represented in MusicCaps, how they are described, and what got lost.

    Assigns every clip to cultural groups (region of origin of the tradition with a Global North / South
    roll-up, genre, instrument family, language, voice) from AudioSet labels and the words of its aspect
    list and caption, keeping the evidence. Reports coverage with 95% CIs overall, by split and by annotator;
    descriptor rates per group (audio-quality and othering words, voice mentions, caption length) with risk
    and odds ratios, tests and Benjamini-Hochberg correction, beside annotator-stratified Mantel-Haenszel
    estimates; download survival per group; and rebalancing weights. Findings come first in report.html.
    """
    from cadenza.audit import AuditConfig, TaxonomyError, run_audit
    from cadenza.common.sources import SourceError

    checks.csv_file("--csv", csv)
    checks.existing_file("--ontology", ontology, what="the AudioSet ontology.json")
    checks.audio_dir("--ingest", ingest, need_shards=False)
    checks.existing_file("--available", available, what="a file of ytids")
    if ingest and available:
        raise checks.fail("--available", "give either --ingest or --available, not both")
    checks.output_file("--weights-out", weights_out, suffixes=(".json", ".parquet"))
    checks.existing_file("--taxonomy", taxonomy, what="a taxonomy YAML file")
    checks.number("--cap", cap, minimum=1)
    checks.number("--alpha", alpha, minimum=0.0001, maximum=0.5)
    checks.number("--min-group-size", min_group_size, minimum=1)
    # assignments.jsonl*: also the temp file of a write an interrupt cut short
    checks.output_dir("--out", out, own=("metrics.json", f"{ASSIGNMENTS_FILE}*"), force=force, command="audit")
    config = AuditConfig(
        csv=csv,
        out=str(out),
        ontology=ontology,
        ingest=ingest,
        available=str(available) if available else None,
        group_by=group_by.value,
        weights_out=str(weights_out) if weights_out else None,
        cap=cap,
        balance_annotators=balance_annotators,
        taxonomy=str(taxonomy) if taxonomy else None,
        alpha=alpha,
        region_evidence=region_evidence.value,
        min_group=min_group_size,
        plots=not no_plots,
    )
    from cadenza.cli.interrupt import command_line, hard_stop_on_signal

    try:
        with hard_stop_on_signal(lambda: f"an audit is redone whole; resume with: {command_line()}"):
            metrics = run_audit(config)
    except TaxonomyError as exc:
        raise SourceError(str(exc)) from exc
    alerts = [f for f in metrics["findings"] if f["severity"] == "alert"]
    ranked = [f for f in metrics["findings"] if f.get("rank")]
    typer.echo(
        f"audited {metrics['clips']} clips in {metrics['timing_s']['total']:.1f} s "
        f"(region evidence: {config.region_evidence}): {len(alerts)} alerts, the {len(ranked)} that matter most:"
    )
    for f in ranked:
        typer.echo(f"{f['rank']}. {f['sentence']}")
    typer.echo(f"report: {out / 'report.html'} (every finding in its appendix)")


def register(app: typer.Typer) -> None:
    # rich help re-wraps each paragraph, so unwrap the docstring's hard line breaks first
    paragraphs = [" ".join(p.split()) for p in (audit.__doc__ or "").split("\n\n")]
    app.command("audit", help="\n\n".join(paragraphs))(audit)
