"""Checks of command-line inputs, run before a command starts any work.

Every check raises `InputError` (click's UsageError, exit status 2) whose message starts with the option
it is about and says what is expected; `cadenza.cli.main` prints it as one `error: ...` line, with no
traceback. Command modules call these instead of writing their own, so that every command words the same
mistake the same way:

    from cadenza.cli import checks
    checks.number("--steps", steps, minimum=1)
    checks.token_dir("--shards", shards)
    checks.output_dir("--out", out, own=("manifest.json",), force=force, command="tokenize")

Paths that are URLs (gs://, s3://, http://...) are passed through: they can only be checked by reading them.
"""

from __future__ import annotations

import csv as csvlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import typer

from cadenza.formats.defaults import MODEL_PRESETS

# click's UsageError and ClickException as typer raises them (recent typer versions vendor click, so
# `import click` would give other classes than the ones typer's parser raises)
UsageError: type = typer.BadParameter.__mro__[1]
ClickException: type = UsageError.__mro__[1]


class InputError(UsageError):  # type: ignore[misc, valid-type]
    """A user mistake found before any work started: one line, exit status 2."""


def fail(option: str, message: str) -> InputError:
    """The error to raise for `option`: `raise checks.fail("--seconds", "must be > 0")`."""
    return InputError(f"{option}: {message}")


def is_remote(spec: str | Path) -> bool:
    return "://" in str(spec)


# ---------------------------------------------------------------- numbers and names


def number(option: str, value: float | None, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None) -> None:
    """`value` (None: not given, nothing to check) within [minimum, maximum], and > `above` if given."""
    if value is None:
        return
    if value != value:  # NaN
        raise fail(option, "must be a number (got nan)")
    if above is not None and not value > above:
        raise fail(option, f"must be greater than {above:g} (got {value:g})")
    if minimum is not None and value < minimum:
        raise fail(option, f"must be at least {minimum:g} (got {value:g})")
    if maximum is not None and value > maximum:
        raise fail(option, f"must be at most {maximum:g} (got {value:g})")


def choice(option: str, value: str, choices: Iterable[str]) -> None:
    known = list(choices)
    if value not in known:
        raise fail(option, f"expected one of {', '.join(known)} (got {value!r})")


def device(option: str, value: str) -> None:
    """auto, cpu or cuda; cuda only where torch sees a CUDA device."""
    from cadenza.common.devices import DEVICES

    choice(option, value, DEVICES)
    if value == "cuda":
        from cadenza.common.devices import cuda_available

        if not cuda_available():
            raise fail(option, "cuda asked for, but torch sees no CUDA device on this machine; use cpu or auto")


# ---------------------------------------------------------------- input paths


def _local(option: str, spec: str | Path) -> Path:
    path = Path(spec).expanduser()
    if not path.exists():
        raise fail(option, f"no such file or directory: {path}")
    return path


def existing_file(option: str, spec: str | Path | None, *, what: str = "a file") -> None:
    if spec is None or is_remote(spec):
        return
    path = _local(option, spec)
    if path.is_dir():
        raise fail(option, f"{path} is a directory; expected {what}")


def existing_dir(option: str, spec: str | Path | None, *, what: str = "a directory") -> Path | None:
    if spec is None or is_remote(spec):
        return None
    path = _local(option, spec)
    if not path.is_dir():
        raise fail(option, f"{path} is a file; expected {what}")
    return path


def csv_file(option: str, spec: str | None) -> None:
    """A local CSV that exists, is a file and holds at least one data row under its header."""
    if spec is None or is_remote(spec):
        return
    existing_file(option, spec, what="the MusicCaps CSV file")
    try:
        with Path(spec).expanduser().open(encoding="utf-8", newline="") as f:
            rows = csvlib.reader(f)
            header = next(rows, None)
            first = next((r for r in rows if any(cell.strip() for cell in r)), None)
    except (OSError, UnicodeDecodeError, csvlib.Error) as exc:
        raise fail(option, f"{spec}: not a readable CSV ({type(exc).__name__}: {exc})") from None
    if header is None:
        raise fail(option, f"{spec} is empty; expected the MusicCaps CSV (a header and one row per clip)")
    if first is None:
        raise fail(option, f"{spec} has a header but no data rows")


def _manifest_kind(path: Path) -> str | None:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("kind") if isinstance(manifest, dict) else None


def _shard_prefixes(path: Path) -> set[str]:
    """Prefixes of the complete shards under path/shards ("audio", "tokens")."""
    shard_dir = path / "shards"
    if not shard_dir.is_dir():
        return set()
    from cadenza.formats.shards import list_shards

    # complete = stats marker written, wherever the layout keeps it (stats/ now, beside the tar before)
    return {Path(t).name.split("-", 1)[0] for t in list_shards(str(shard_dir))}


def dir_kind(path: Path) -> str | None:
    """What a directory holds: "audio" (ingest output), "tokens" (tokenize output), "run" (train output)."""
    if (path / "checkpoints").is_dir() or ((path / "config.json").is_file() and (path / "metrics.jsonl").exists()):
        return "run"
    kind = _manifest_kind(path)
    if kind in ("audio", "tokens"):
        return kind
    if (path / "tokenizers.json").is_file():
        return "tokens"
    prefixes = _shard_prefixes(path)
    return prefixes.pop() if len(prefixes) == 1 and prefixes <= {"audio", "tokens"} else None


_WHAT = {
    "audio": "an audio dir (written by `cadenza ingest`)",
    "tokens": "a token dir (written by `cadenza tokenize`)",
    "run": "a run dir (written by `cadenza train`)",
}


def _kind_dir(option: str, spec: str | Path | None, want: str, prefix: str, need_shards: bool = True) -> None:
    path = existing_dir(option, spec, what=_WHAT[want])
    if path is None:
        return
    kind = dir_kind(path)
    if kind is not None and kind != want:
        raise fail(option, f"{path} is {_WHAT[kind]}; expected {_WHAT[want]}")
    if need_shards and prefix not in _shard_prefixes(path):
        raise fail(option, f"{path} holds no complete {prefix} shards under shards/; expected {_WHAT[want]}")


def audio_dir(option: str, spec: str | Path | None, *, need_shards: bool = True) -> None:
    """An ingest output dir; with need_shards, one holding at least one complete audio shard."""
    _kind_dir(option, spec, "audio", "audio", need_shards)


def token_dir(option: str, spec: str | Path | None) -> None:
    _kind_dir(option, spec, "tokens", "tokens")
    if spec is not None and not is_remote(spec) and not (Path(spec) / "manifest.json").is_file():
        raise fail(option, f"{spec} has no manifest.json; expected {_WHAT['tokens']} that finished")


def run_dir(option: str, spec: str | Path | None) -> None:
    """A training run with at least one checkpoint."""
    path = existing_dir(option, spec, what=_WHAT["run"])
    if path is None:
        return
    kind = dir_kind(path)
    if kind in ("audio", "tokens"):
        raise fail(option, f"{path} is {_WHAT[kind]}; expected {_WHAT['run']}")
    if not (path / "checkpoints" / "latest.json").is_file():
        raise fail(option, f"{path} has no checkpoint (checkpoints/latest.json); train first, or give "
                           f"{_WHAT['run']}")


def preset_or_file(option: str, value: str) -> None:
    if value in MODEL_PRESETS:
        return
    if not (value.endswith(".json") or Path(value).exists()):
        raise fail(option, f"expected a preset ({', '.join(MODEL_PRESETS)}) or a JSON file of fields (got {value!r})")
    existing_file(option, value, what="a JSON file")
    try:
        loaded: Any = json.loads(Path(value).read_text())
    except (OSError, ValueError) as exc:
        raise fail(option, f"{value}: not a JSON file ({exc})") from None
    if not isinstance(loaded, dict):
        raise fail(option, f"{value}: expected a JSON object of config fields")


# ---------------------------------------------------------------- output paths


def _holds_files(path: Path) -> bool:
    """Whether `path` holds anything but empty directories (one level down is enough: what a run that was
    stopped right after creating its subdirectories leaves)."""
    for entry in path.iterdir():
        if not entry.is_dir() or any(entry.iterdir()):
            return True
    return False


def output_dir(option: str, spec: str | Path | None, *, kind: str | None = None, own: Iterable[str] = (),
               force: bool = False, command: str) -> None:
    """An output dir that is absent, empty, or this command's own earlier output: it holds one of the `own`
    paths (glob patterns) and is not another stage's kind of dir. Anything else needs --force, so that no
    command writes into a stranger's files. A file is never accepted."""
    if spec is None or is_remote(spec):
        return
    path = Path(spec).expanduser()
    if path.exists() and not path.is_dir():
        raise fail(option, f"{path} is a file; expected an output directory")
    if not path.is_dir() or not _holds_files(path):
        return
    found = dir_kind(path)
    if found is not None and found != kind:
        raise fail(option, f"{path} is {_WHAT[found]}; give another {option} for `cadenza {command}`")
    if force or any(next(iter(path.glob(pattern)), None) is not None for pattern in own):
        return
    raise fail(option, f"{path} is not empty and is not the output of `cadenza {command}`; give another "
                       f"{option} or pass --force to write into it")


def output_file(option: str, spec: str | Path | None, *, suffixes: Iterable[str] = (),
                own: Callable[[Path], bool] | None = None, force: bool = False, command: str = "") -> None:
    """A file to write: not a directory, its suffix one of `suffixes` when given. With `own`, an existing
    file is overwritten only when `own(path)` says it is this command's earlier output, or with --force."""
    if spec is None or is_remote(spec):
        return
    path = Path(spec).expanduser()
    if path.is_dir():
        raise fail(option, f"{path} is a directory; expected a file path")
    allowed = list(suffixes)
    if allowed and path.suffix not in allowed:
        raise fail(option, f"expected a {' or '.join(allowed)} file (got {path.name})")
    if path.parent.exists() and not path.parent.is_dir():
        raise fail(option, f"{path.parent} is a file, so {path.name} cannot be written under it")
    if own is not None and path.is_file() and path.stat().st_size and not force and not _owned(own, path):
        raise fail(option, f"{path} exists and is not the output of `cadenza {command}`; give another "
                           f"{option} or pass --force to overwrite it")


def _owned(own: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(own(path))
    except Exception:  # noqa: BLE001 (unreadable as our own output is exactly "not ours")
        return False


# ---------------------------------------------------------------- pass-through Beam options


def beam_args(args: list[str], own_options: Iterable[str]) -> None:
    """Options a command does not know are passed to Apache Beam; refuse any Beam does not know either
    (asked of Beam's own parser), suggesting the closest option, so a typo never runs the whole job."""
    import difflib

    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    from cadenza.pipelines.beam import import_dask_options, is_dask, pipeline_options

    if not import_dask_options() and is_dask(pipeline_options(args)):
        raise fail("--runner", "the Dask runner needs dask and distributed: pip install 'cadenza[dask]'")

    class _Parser(_BeamArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise fail("Beam option", message)

    parser = _Parser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 (how PipelineOptions itself builds its parser)
    _, unknown = parser.parse_known_args(args)
    for arg in unknown:
        if not arg.startswith("-"):
            raise fail(arg, "unexpected argument (options take the form --name value)")
        name = arg.split("=", 1)[0]
        known = [*own_options, *(o for a in parser._actions for o in a.option_strings)]  # noqa: SLF001
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else " (see --help; Beam pipeline options are passed on)"
        raise fail(name, f"no such option, neither cadenza's nor Apache Beam's{hint}")
