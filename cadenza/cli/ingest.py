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
    max_videos_per_hour: float | None = typer.Option(
        None, help="Request budget per worker process, i.e. per YouTube session (about 300/h without a PO token, "
        "1000 with one); 0 for none. Default: 300 for YouTube, none for other sources. Workers sharing one IP "
        "share its limit: divide by their number."
    ),
    max_blocked: int = typer.Option(
        5, help="Stop (exit 4, rows left pending) after this many bot checks or rate limits in a row."
    ),
    block_pause: float | None = typer.Option(
        None, help="Seconds all fetch threads of a worker pause on a bot check or rate limit, doubling each time "
        "(default: 60 for YouTube, 1 for other sources)."
    ),
    vantage: str | None = typer.Option(
        None, help="Where the download runs, e.g. a country code; recorded in the manifest for the survival audit."
    ),
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
    are skipped; every row ends in a shard, a failure record (the clip's fault), or pending (the
    session's fault: bot check, rate limit, network), which the next run fetches again. When YouTube
    keeps blocking the session the run stops with exit status 4; pass what it says and rerun.

    Any other option goes to Apache Beam, e.g. `--runner DataflowRunner --project P --region R
    --temp_location gs://B/tmp`. Default: the DirectRunner, multi-processing, one worker per core
    (`--direct_running_mode in_memory` runs in this process)."""
    from cadenza.pipelines.fetch import is_youtube
    from cadenza.pipelines.ingest import IngestConfig, SessionBlockedError, run_ingest

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
        max_videos_per_hour=max_videos_per_hour,
        max_blocked=max_blocked,
        block_pause_s=block_pause,
        vantage=vantage,
        ontology=None if ontology.lower() == "none" else ontology,
        download_ranges=download_ranges,
        max_attempts=max_attempts,
        progress=progress,
    )
    try:
        config.validate()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if is_youtube(config.source_url_template):
        _warn_if_degraded(config)
    try:
        manifest = run_ingest(config, beam_args=list(ctx.args))
    except SessionBlockedError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(4) from None
    if manifest["rows_pending"]:
        why = ", ".join(f"{k}: {v}" for k, v in manifest["pending_by_category"].items())
        typer.secho(f"warning: {manifest['rows_pending']} rows are pending after session-side failures ({why}); "
                    "run the same command again to fetch them", fg="yellow", err=True)
    if as_json:
        typer.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    _summary(manifest)


def _warn_if_degraded(config) -> None:
    """The `cadenza doctor` check, as warnings: the run goes on, but the user learns why clips will fail."""
    from cadenza.pipelines.doctor import check

    for problem in check(config.cookies, config.pot_provider_url).problems:
        typer.secho(f"{problem.line()} (cadenza doctor)", fg="yellow", err=True)


def _summary(m: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="ingest", show_header=False)
    for k in ("rows_in", "rows_valid", "clips_written", "clips_failed", "rows_pending", "audio_hours"):
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
