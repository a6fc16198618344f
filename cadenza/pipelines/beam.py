"""The Beam pipeline a cadenza stage runs, on whichever runner the user's Beam options name.

Any runner Beam knows is taken as given (Dataflow, Flink, Spark, Dask, Portable, Prism), so the pipelines
stay runner-agnostic. Only the default differs from a bare `beam.Pipeline`: Beam's DirectRunner first tries
Prism, a Go binary it downloads from github.com at run time, and falls back to its FnApiRunner when that
fails. cadenza goes straight to that FnApiRunner path, built as the DirectRunner builds it: a local run
contacts nothing it was not pointed at, and runs the same online and offline.

Progress bars the driver draws while any runner works watch the shards' stats files: Beam metrics are only
reliable once a job ends (and their live API differs per runner), but every runner writes the same
completion markers, so polling them works for local and remote runs alike.

Beam resolves only some short runner names; its DaskRunner needs its module path, so cadenza maps the
short name `DaskRunner` to it. On Dask, one `dask.Bag` partition is one bundle run by one worker and
Beam's Reshuffle is a no-op, so independent tasks get a partition each unless the user chose a layout.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from cadenza.formats import shards, storage

# Names the user may give for the default local runner (Beam resolves all of these to its DirectRunner).
DIRECT_RUNNERS = {"DirectRunner", "SwitchingDirectRunner", "apache_beam.runners.direct.direct_runner.DirectRunner"}
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# short names Beam itself refuses
SHORT_NAMES = {"DaskRunner": DASK_RUNNER}


def pipeline_options(beam_args: list[str] | None, *, parallel_tasks: int | None = None,
                     local_processes: bool = True) -> Any:
    """Beam options from the user's args. With `parallel_tasks` given, independent tasks (shards) are spread:
    on the local runner over worker processes (when `local_processes`, unless the user chose a running
    mode), on Dask over one partition each (unless the user chose --dask_npartitions/--dask_partition_size)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    args = list(beam_args or [])
    options = PipelineOptions(args)
    runner = options.view_as(StandardOptions).runner
    if isinstance(runner, str) and runner in SHORT_NAMES:
        args.append(f"--runner={SHORT_NAMES[runner]}")  # the last --runner wins
        options = PipelineOptions(args)
    flat = " ".join(args)
    if is_dask(options):
        import_dask_options()
        if parallel_tasks and "--dask_npartitions" not in flat and "--dask_partition_size" not in flat:
            args.append(f"--dask_npartitions={parallel_tasks}")
        return PipelineOptions(args)
    if parallel_tasks is None or not local_processes or not is_local(options):
        return options
    if "--direct_running_mode" not in flat:
        # one task has nothing to spread: skip starting worker processes for it
        args.append("--direct_running_mode=" + ("multi_processing" if parallel_tasks > 1 else "in_memory"))
    if "--direct_num_workers" not in flat and "in_memory" not in " ".join(args):
        args.append(f"--direct_num_workers={max(1, min(os.cpu_count() or 1, parallel_tasks))}")
    return PipelineOptions(args)


def is_dask(options: Any) -> bool:
    from apache_beam.options.pipeline_options import StandardOptions

    return options.view_as(StandardOptions).runner == DASK_RUNNER


def import_dask_options() -> bool:
    """Register Beam's Dask options (--dask_client_address, ...) with its option parser, if Dask is installed."""
    try:
        import apache_beam.runners.dask.dask_runner  # noqa: F401 (defines DaskOptions)
        import apache_beam.runners.dask.transform_evaluator  # noqa: F401 (needs dask itself)
    except ImportError:
        return False
    return True


def is_local(options: Any) -> bool:
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    return runner is None or (isinstance(runner, str) and runner in DIRECT_RUNNERS)


def make_pipeline(options: Any) -> Any:
    """A `beam.Pipeline` on the user's runner, or on the DirectRunner's FnApiRunner (never Prism) by default."""
    import apache_beam as beam

    if not is_local(options):
        return beam.Pipeline(options=options)
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    # as DirectRunner.run_pipeline does, so that worker processes see the same pipeline options
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision), options=options)


def run_to_completion(pipeline: Any) -> Any:
    """Run `pipeline`, wait for it, and return its result. Beam's DaskRunner opens a `distributed.Client`
    per run and never closes it (the client then retries a closed scheduler); this closes it."""
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None) if is_dask(pipeline.options) else None
        if client is not None:
            client.close()
    return result


class ProgressBar:
    """A rich progress bar (or nothing); the context value is an `advance()` callable."""

    def __init__(self, enabled: bool, what: str, total: int) -> None:
        self.enabled, self.what, self.total = enabled, what, total

    def __enter__(self):
        if not self.enabled:
            return lambda n=1: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(transient=False, console=Console(stderr=True))  # stdout carries results only
        self.bar.start()
        task = self.bar.add_task(self.what, total=self.total)
        return lambda n=1: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.stop()


class ShardWatcher:
    """Polls for completion markers while the runner works, whichever runner and wherever it runs."""

    def __init__(self, tars: list[str], advance, interval_s: float = 1.0) -> None:
        self.tars, self.advance, self.interval_s = list(tars), advance, interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while self.tars and not self.stop.wait(self.interval_s):
            done = [t for t in self.tars if storage.exists(shards.stats_path(t))]
            for t in done:
                self.tars.remove(t)
            if done:
                self.advance(len(done))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._loop_once()

    def _loop_once(self) -> None:
        done = [t for t in self.tars if storage.exists(shards.stats_path(t))]
        if done:
            self.advance(len(done))
