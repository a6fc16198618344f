"""`cadenza ingest`: fetch and clip MusicCaps audio into WebDataset shards (Apache Beam + yt-dlp)."""

from __future__ import annotations

import json

import typer

ONTOLOGY_HELP = (
    "AudioSet ontology.json (path or URL) used to name each clip's labels in its json; "
    "'none' to skip. Default: the official file, downloaded once and cached."
)


def ingest(
    ctx: typer.Context,
    csv: str = typer.Option(..., "--csv", help="MusicCaps CSV: a local path or an http(s) URL."),
    out: str = typer.Option(..., "--out", help="Output directory: a local path or an fsspec URL (gs://, s3://...)."),
    source_url_template: str = typer.Option(
        "https://www.youtube.com/watch?v={ytid}", help="Where a clip's media is: an http(s) URL with {ytid}."
    ),
    limit: int | None = typer.Option(None, help="Only the first N data rows of the CSV."),
    shard_size: int = typer.Option(500, help="Clips per shard (consecutive valid rows in CSV order)."),
    sample_rate: int = typer.Option(32000, help="Sample rate of the stored mono FLAC."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Fetch again only the rows that failed, rewriting the shards they belong to."
    ),
    cookies: str | None = typer.Option(None, help="Netscape cookies file passed to yt-dlp (see `cadenza doctor`)."),
    cookies_from_browser: str | None = typer.Option(
        None, help="Read cookies from a local browser, yt-dlp style: BROWSER[+KEYRING][:PROFILE] (local runs only)."
    ),
    pot_provider_url: str | None = typer.Option(
        None, help="Base URL of a bgutil PO token server (install cadenza[pot]), e.g. http://127.0.0.1:4416."
    ),
    sleep_requests: float = typer.Option(
        0.0, help="Seconds between requests (yt-dlp's --sleep-requests) and between fetch starts per worker."
    ),
    max_concurrent_fetches: int = typer.Option(16, help="Clips fetched at once per worker (waits overlap)."),
    ontology: str = typer.Option(
        "https://raw.githubusercontent.com/audioset/ontology/master/ontology.json", help=ONTOLOGY_HELP
    ),
    download_ranges: bool = typer.Option(
        True, help="Download only each clip's window when the source allows it (else the whole file)."
    ),
    max_attempts: int = typer.Option(4, help="Tries per clip for transient failures (429, 5xx, timeouts)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Fetch every valid MusicCaps row's audio with yt-dlp, cut it to the row's start_s..end_s window,
    downmix to mono, resample, measure its quality and write WebDataset shards under OUT/shards,
    failure records under OUT/failures and OUT/manifest.json. Re-running resumes: complete shards
    are skipped; every row ends in a shard or a failure record.

    Any other option goes to Apache Beam, e.g. `--runner DataflowRunner --project P --region R
    --temp_location gs://B/tmp`. Default: the DirectRunner, multi-processing, one worker per core
    (`--direct_running_mode in_memory` runs in this process)."""
    from cadenza.pipelines.ingest import IngestConfig, run_ingest

    config = IngestConfig(
        csv=csv,
        out=out,
        source_url_template=source_url_template,
        limit=limit,
        shard_size=shard_size,
        sample_rate=sample_rate,
        retry_failed=retry_failed,
        cookies=cookies,
        cookies_from_browser=cookies_from_browser,
        pot_provider_url=pot_provider_url,
        sleep_requests=sleep_requests,
        max_concurrent_fetches=max_concurrent_fetches,
        ontology=None if ontology.lower() == "none" else ontology,
        download_ranges=download_ranges,
        max_attempts=max_attempts,
        progress=progress,
    )
    try:
        config.validate()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    manifest = run_ingest(config, beam_args=list(ctx.args))
    if as_json:
        typer.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    _summary(manifest)


def _summary(m: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="ingest", show_header=False)
    for k in ("rows_in", "rows_valid", "clips_written", "clips_failed", "audio_hours"):
        t.add_row(k.replace("_", " "), str(m[k]))
    for cat, n in m["failures_by_category"].items():
        t.add_row(f"  failed: {cat}", str(n))
    t.add_row("shards", str(len(m["shards"])))
    Console().print(t)


def register(app: typer.Typer) -> None:
    app.command(
        "ingest",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(ingest)
