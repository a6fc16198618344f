"""`cadenza doctor`: can this machine download MusicCaps from YouTube, and if not, what to do."""

from __future__ import annotations

import json

import typer


def doctor(
    cookies: str | None = typer.Option(None, help="Netscape cookies file to check (what you pass to ingest)."),
    pot_provider_url: str | None = typer.Option(None, help="PO token server you pass to ingest, if any."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    """Report what yt-dlp, configured as `cadenza ingest` configures it, sees here: its version, the JS
    runtimes and challenge providers (YouTube needs one), PO token providers, ffmpeg and the cookies
    file. One line per problem says what to do. Exit status 1 when YouTube ingest would be degraded
    (missing formats or every clip failing); warnings alone exit 0. Makes no network request."""
    import os

    from cadenza.pipelines.ingest.doctor import check

    if cookies and not os.path.isfile(cookies):
        raise typer.BadParameter(f"no such file: {cookies}", param_hint="--cookies")
    report = check(cookies, pot_provider_url)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        for line in report.lines():
            typer.echo(line)
        typer.echo("YouTube ingest would be degraded" if report.degraded else "ok: YouTube ingest has what it needs")
    if report.degraded:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
