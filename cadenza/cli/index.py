"""`cadenza index DIR`: per-shard parquet tables and one samples.parquet for an ingest or tokenize output."""

from __future__ import annotations

import json
import sys

import typer


def index(
    directory: str = typer.Argument(..., help="An ingest or tokenize output dir (the one holding shards/)."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as one JSON document."),
) -> None:
    """Rebuild the tables of an output dir: move an old layout's stats files out of shards/, remake
    samples/NAME.parquet for every shard and failures/NAME.parquet for every failure file, and write
    DIR/samples.parquet with one row per sample (status "success") and per failure ("failed")."""
    from cadenza.formats.index import rebuild_index

    try:
        result = rebuild_index(directory.rstrip("/"))
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}; pass the directory `cadenza ingest --out` or `cadenza tokenize --out` wrote",
                   err=True)
        sys.exit(2)
    if as_json:
        typer.echo(json.dumps(result, sort_keys=True))
        return
    typer.echo(f"{result['path']}: {result['rows']} rows, {result['success']} samples, {result['failed']} failures"
               f" ({result['migrated_shards']} shards moved to the current layout)")


def register(app: typer.Typer) -> None:
    app.command("index")(index)
