"""The `cadenza` command. Each stage registers its commands from a module of this package.

Command modules import only light things at module level so that `cadenza --help` stays fast;
heavy libraries (torch, beam, transformers) are imported inside the commands.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

# commands in --help in the order the chain runs them; commands not named here come last
PIPELINE_ORDER = ("musiccaps", "ingest", "codec", "tokenize", "index", "audit", "train", "sample", "evaluate", "report",
                  "demo", "doctor")


class _PipelineOrderGroup(TyperGroup):
    def list_commands(self, ctx: object) -> list[str]:
        names = super().list_commands(ctx)  # type: ignore[arg-type]
        rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))


app = typer.Typer(
    cls=_PipelineOrderGroup,
    name="cadenza",
    help=(
        "MusicCaps to training-ready data for MusicLM-style text-to-music models.\n\n"
        "Stages: `musiccaps validate` (metadata) -> `ingest` (fetch, clip, audio shards) -> "
        "`tokenize` (semantic, acoustic, text tokens) -> `train` -> `sample` -> `evaluate`; "
        "`audit` reports cultural bias at any point; `report` shows each culture along the whole chain. "
        "`demo` runs the whole chain offline. `doctor` checks what downloading from YouTube needs."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: option names are never truncated at 80 columns
    add_completion=False,
)

# Each module defines register(app). Order is the order shown in --help.
COMMAND_MODULES = [
    "cadenza.cli.musiccaps",
    "cadenza.cli.ingest",
    "cadenza.cli.codec",
    "cadenza.cli.tokenize",
    "cadenza.cli.index",
    "cadenza.cli.audit",
    "cadenza.cli.train",  # train, sample, evaluate
    "cadenza.cli.report",
    "cadenza.cli.demo",
    "cadenza.cli.doctor",
]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def _version(value: bool) -> None:
    if value:
        from cadenza import __version__

        typer.echo(f"cadenza {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """MusicCaps to training-ready data for MusicLM-style text-to-music models."""


def _quiet_library_noise() -> None:
    """Keep the terminal for cadenza's own progress: no per-load progress bars from transformers, and not
    Beam's import-time warning about optional Google Cloud clients that local runs never use."""
    import logging
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger().addFilter(lambda record: "apitools not found" not in record.getMessage())


def _error(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)


def main(argv: list[str] | None = None) -> None:
    """Run `cadenza ARGV` (default: sys.argv) and exit with its status.

    Usage mistakes (click's and cadenza.cli.checks') and unreadable inputs print one line and exit 2;
    a full disk exits 3; Ctrl-C / SIGTERM exit 130 / 143 (see cadenza.cli.interrupt).
    """
    from cadenza.cli.checks import ClickException, UsageError
    from cadenza.cli.interrupt import Interrupted, signals_to_watcher
    from cadenza.common.sources import SourceError

    _quiet_library_noise()
    try:
        with signals_to_watcher():
            status = typer.main.get_command(app).main(args=argv, prog_name="cadenza", standalone_mode=False)
    except UsageError as exc:
        _error(" ".join(exc.format_message().split()))
        sys.exit(exc.exit_code)
    except ClickException as exc:
        _error(" ".join(exc.format_message().split()))
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except SourceError as exc:
        # inputs that cannot be read at all: one line, non-zero exit, no traceback
        _error(str(exc))
        sys.exit(2)
    except Interrupted as exc:
        _error(str(exc))
        sys.exit(exc.status)
    except Exception as exc:
        from cadenza.formats.storage import is_disk_full

        if not is_disk_full(exc):
            raise
        # shards are written atomically with their marker last, so what is on disk is whole or ignored
        _error(f"no space left on device ({str(exc).splitlines()[0][:300]}); completed shards are "
               "kept: free some space and run the same command again to resume")
        sys.exit(3)
    sys.exit(status if isinstance(status, int) else 0)
