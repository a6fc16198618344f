"""`cadenza report`: the chain per culture on one page (library: cadenza.audit)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def report(
    audit: Path = typer.Option(..., "--audit", help="Audit output dir (metrics.json from `cadenza audit`)."),
    codec_eval: Path | None = typer.Option(
        None, "--codec-eval", help="Codec evaluation dir (metrics.json with by_group); shown as not run without it."
    ),
    eval_dir: Path | None = typer.Option(
        None, "--eval", help="Model evaluation dir (metrics.json from `cadenza evaluate --audit`)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output dir: chain.html (self-contained, plots inlined) and chain.json."
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the plots."),
    as_json: bool = typer.Option(False, "--json", help="Print the chain table as one JSON document."),
) -> None:
    """How each culture fares from dataset to model, on one page.

    Per Global North/South roll-up, region and genre group: share of the dataset and download survival (from
    the audit), codec reconstruction quality (from the codec evaluation), held-out NLL, caption gain, prompt
    adherence and pull toward the mainstream (from the model evaluation), each with its 95% CI and a flag where
    the group is worse than the rest. Links whose input is missing show as "not run".
    """
    from cadenza.audit import ChainInputError, write_chain_report
    from cadenza.common.sources import SourceError

    try:
        chain = write_chain_report(
            str(audit),
            str(out),
            codec_dir=str(codec_eval) if codec_eval else None,
            eval_dir=str(eval_dir) if eval_dir else None,
            plots=not no_plots,
        )
    except ChainInputError as exc:
        raise SourceError(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(chain, default=str))
        return
    for col in chain["columns"]:
        typer.echo(f"{col['title']}: {col['status']}")
    typer.echo(f"report: {chain['html']}")


def register(app: typer.Typer) -> None:
    paragraphs = [" ".join(p.split()) for p in (report.__doc__ or "").split("\n\n")]
    app.command("report", help="\n\n".join(paragraphs))(report)
