"""`cadenza ingest`: fetch and clip MusicCaps audio into WebDataset shards (Apache Beam + yt-dlp)."""

from __future__ import annotations

import json

import typer

from cadenza.cli import checks
from cadenza.formats import defaults

# ingest's exit status when it ran but kept too little: nothing written, or more failed than allowed
EXIT_TOO_MANY_FAILURES = 5  # 4 is a session YouTube blocks (rows pending)

ONTOLOGY_HELP = (
    "AudioSet ontology.json (path or URL) used to name each clip's labels in its json; "
    "'none' to skip. Default: the official file, downloaded once and cached."
)


def ingest(
    ctx: typer.Context,
    csv: str = typer.Option(..., "--csv", help="MusicCaps CSV: a local path or an http(s) URL."),
    out: str = typer.Option(..., "--out", help="Output directory: a local path or an fsspec URL (gs://, s3://...)."),
    source_url_template: str = typer.Option(
        defaults.YOUTUBE_URL_TEMPLATE, help="Where a clip's media is: an http(s) URL with {ytid}."
    ),
    limit: int | None = typer.Option(None, help="Only the first N data rows of the CSV (>= 1)."),
    shard_size: int = typer.Option(defaults.SHARD_SIZE, help="Clips per shard (consecutive valid rows in CSV order)."),
    sample_rate: int = typer.Option(defaults.SAMPLE_RATE, help="Sample rate of the stored mono FLAC."),
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
    ontology: str = typer.Option(defaults.ONTOLOGY_URL, help=ONTOLOGY_HELP),
    download_ranges: bool = typer.Option(
        True, help="Download only each clip's window when the source allows it (else the whole file)."
    ),
    max_attempts: int = typer.Option(4, help="Tries per clip for transient failures (429, 5xx, timeouts)."),
    max_failure_rate: float = typer.Option(
        0.5, help=f"Exit with status {EXIT_TOO_MANY_FAILURES} when more than this fraction of the valid rows failed "
                  f"(status {EXIT_TOO_MANY_FAILURES} too when no clip was written at all)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar (on stderr)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as one JSON document on stdout."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out that is not an ingest output."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Apache Beam's log on stderr too "
                                 "(it always goes to OUT/ingest.log)."),
) -> None:
    """Fetch every valid MusicCaps row's audio with yt-dlp, cut it to the row's start_s..end_s window,
    downmix to mono, resample, measure its quality and write WebDataset shards under OUT/shards,
    failure records under OUT/failures and OUT/manifest.json. Re-running resumes: complete shards
    are skipped; every row ends in a shard, a failure record (the clip's fault), or pending (the
    session's fault: bot check, rate limit, network), which the next run fetches again. When YouTube
    keeps blocking the session the run stops with exit status 4; pass what it says and rerun.

    Any other option goes to Apache Beam, e.g. `--runner DataflowRunner --project P --region R
    --temp_location gs://B/tmp`. Default: the DirectRunner, multi-processing, one worker per core
    (`--direct_running_mode in_memory` runs in this process).

    Ctrl-C or SIGTERM stops at once, keeping the complete shards; the same command resumes."""
    checks.csv_file("--csv", csv)
    checks.number("--limit", limit, minimum=1)
    checks.number("--sleep-requests", sleep_requests, minimum=0)
    checks.number("--max-attempts", max_attempts, minimum=1)
    checks.number("--max-failure-rate", max_failure_rate, minimum=0, maximum=1)
    checks.existing_file("--cookies", cookies, what="a Netscape cookies file")
    if ontology.lower() != "none":
        checks.existing_file("--ontology", ontology, what="the AudioSet ontology.json")
    checks.output_dir("--out", out, kind="audio", own=("manifest.json", "ingest.log", "failures/validate.jsonl"),
                      force=force, command="ingest")
    checks.beam_args(list(ctx.args), [o for p in ctx.command.params for o in p.opts])

    from cadenza.cli.interrupt import resumable_shard_stage
    from cadenza.pipelines.ingest.fetch import is_youtube
    from cadenza.pipelines.ingest.run import IngestConfig, SessionBlockedError, run_ingest

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
        raise checks.InputError(str(exc)) from None
    if is_youtube(config.source_url_template):
        _warn_if_degraded(config)
    with resumable_shard_stage(out, "ingest", "audio", verbose, refused=SessionBlockedError, refused_status=4):
        manifest = run_ingest(config, beam_args=list(ctx.args))
    if manifest["rows_pending"]:
        why = ", ".join(f"{k}: {v}" for k, v in manifest["pending_by_category"].items())
        typer.secho(f"warning: {manifest['rows_pending']} rows are pending after session-side failures ({why}); "
                    "run the same command again to fetch them", fg="yellow", err=True)
    if as_json:
        typer.echo(json.dumps(manifest, indent=2, sort_keys=True))
    else:
        _summary(manifest)
        typer.echo(f"output: {out}")
    status = _verdict(manifest, max_failure_rate)
    if status:
        raise typer.Exit(status)


def _verdict(m: dict, max_failure_rate: float) -> int:
    """One stderr line when the run kept too little (and its exit status), or a hint when it did nothing."""
    from cadenza.cli.interrupt import command_line

    fetch_failed = m["clips_failed"]
    cats = ", ".join(f"{k} {v}" for k, v in m["failures_by_category"].items()) or "none"
    retry = command_line() if "--retry-failed" in command_line().split() else command_line() + " --retry-failed"
    if m["rows_valid"] and (m["clips_written"] == 0 or fetch_failed > max_failure_rate * m["rows_valid"]):
        typer.secho(f"error: {m['clips_written']} of {m['rows_valid']} valid rows written, {fetch_failed} failed "
                    f"(by category: {cats}); failures are in the failures/ dir; fix the cause, then fetch them "
                    f"again with: {retry}", fg="red", err=True)
        return EXIT_TOO_MANY_FAILURES
    if m["run"]["shards_written"] == 0 and fetch_failed:
        typer.echo(f"nothing to do: every shard is complete; {fetch_failed} rows failed before ({cats}); to "
                   f"fetch them again: {retry}", err=True)
    return 0


def _warn_if_degraded(config) -> None:
    """The `cadenza doctor` check, as warnings: the run goes on, but the user learns why clips will fail."""
    from cadenza.pipelines.ingest.doctor import check

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
    if m.get("shards_without_samples"):
        t.add_row("shards without clips", str(len(m["shards_without_samples"])))
    Console().print(t)


def register(app: typer.Typer) -> None:
    app.command(
        "ingest",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(ingest)
