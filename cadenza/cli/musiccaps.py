"""`cadenza musiccaps ...`: metadata commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

musiccaps_app = typer.Typer(help="MusicCaps metadata: load, validate, summarise.", no_args_is_help=True)


@musiccaps_app.command("validate")
def validate(
    csv: str = typer.Argument(..., help="MusicCaps CSV: a local path or an http(s) URL (downloaded once, cached)."),
    ontology: str | None = typer.Option(
        None, help="AudioSet ontology.json (path or URL), to name labels and check they exist."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of a table."),
    rejects: Path | None = typer.Option(
        None, help="Write every rejected row (row, line, field, value, reason) to this JSONL file."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite a --rejects file that is not a rejects list."),
) -> None:
    """Validate every row of a MusicCaps CSV and summarise: rows read, valid, rejected by reason,
    split sizes, label coverage. Exits 0 whenever the file could be read, even with rejected rows."""
    from cadenza.cli import checks
    from cadenza.musiccaps import load_musiccaps, load_ontology

    checks.output_file("--rejects", rejects, suffixes=(".jsonl",), own=_is_rejects, force=force,
                       command="musiccaps validate")
    result = load_musiccaps(csv)
    onto = load_ontology(ontology) if ontology else None
    summary = result.summary(onto)
    if rejects is not None:
        rejects.parent.mkdir(parents=True, exist_ok=True)
        with rejects.open("w", encoding="utf-8") as f:
            for r in result.rejects:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        summary["rejects_file"] = str(rejects)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    _print_summary(summary, result.rejects[:10])


def _is_rejects(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        first = json.loads(f.readline())
    return isinstance(first, dict) and {"row", "reason"} <= first.keys()


def _print_summary(summary: dict, first_rejects: list) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="MusicCaps validation", caption=summary["source"], show_header=False)
    t.add_row("rows read", str(summary["rows_read"]))
    t.add_row("valid", f"[green]{summary['valid']}[/]")
    t.add_row("rejected", f"[red]{summary['rejected']}[/]" if summary["rejected"] else "0")
    for reason, n in summary["rejected_by_reason"].items():
        t.add_row(f"  {reason}", str(n))
    for split, n in summary["splits"].items():
        t.add_row(f"split {split}", str(n))
    for k, v in summary["label_coverage"].items():
        if not isinstance(v, list):
            t.add_row(f"labels: {k.replace('_', ' ')}", str(v))
    console.print(t)
    for r in first_rejects:
        console.print(f"[red]reject[/] {r}", markup=True, highlight=False)
    if summary["rejected"] > len(first_rejects):
        console.print(f"... and {summary['rejected'] - len(first_rejects)} more (use --rejects FILE)")


def register(app: typer.Typer) -> None:
    app.add_typer(musiccaps_app, name="musiccaps")
