"""The `cadenza` command. Each stage registers its commands from a module of this package.

Command modules import only light things at module level so that `cadenza --help` stays fast;
heavy libraries (torch, beam, transformers) are imported inside the commands.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="cadenza",
    help=(
        "MusicCaps to training-ready data for MusicLM-style text-to-music models.\n\n"
        "Stages: `musiccaps validate` (metadata) -> `ingest` (fetch, clip, audio shards) -> "
        "`tokenize` (semantic, acoustic, text tokens) -> `train` -> `sample` -> `evaluate`; "
        "`audit` reports cultural bias at any point. `demo` runs the whole chain offline."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines register(app). Order is the order shown in --help.
COMMAND_MODULES = [
    "cadenza.cli.musiccaps",
    "cadenza.cli.ingest",
    "cadenza.cli.codec",
    "cadenza.cli.tokenize",
    "cadenza.cli.audit",
    "cadenza.cli.train",  # train, sample, evaluate
    "cadenza.cli.demo",
]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def _quiet_library_noise() -> None:
    """Keep the terminal for cadenza's own progress: no per-load progress bars from transformers, and not
    Beam's import-time warning about optional Google Cloud clients that local runs never use."""
    import logging
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger().addFilter(lambda record: "apitools not found" not in record.getMessage())


def main() -> None:
    from cadenza.sources import SourceError

    _quiet_library_noise()
    try:
        app()
    except SourceError as exc:
        # inputs that cannot be read at all: one line, non-zero exit, no traceback
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except Exception as exc:
        from cadenza.shards import is_disk_full

        if not is_disk_full(exc):
            raise
        # shards are written atomically with their marker last, so what is on disk is whole or ignored
        typer.secho(f"error: no space left on device ({str(exc).splitlines()[0][:300]}); completed shards are "
                    "kept: free some space and run the same command again to resume", fg="red", err=True)
        sys.exit(3)
