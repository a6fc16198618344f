"""The Beam pipeline a cadenza stage runs, on whichever runner the user's Beam options name.

Any runner Beam knows is taken as given (Dataflow, Flink, Spark, Dask, Portable, Prism), so the pipelines
stay runner-agnostic. Only the default differs from a bare `beam.Pipeline`: Beam's DirectRunner first tries
Prism, a Go binary it downloads from github.com at run time, and falls back to its FnApiRunner when that
fails. cadenza goes straight to that FnApiRunner path, built as the DirectRunner builds it: a local run
contacts nothing it was not pointed at, and runs the same online and offline.
"""

from __future__ import annotations

import os
from typing import Any

# Names the user may give for the default local runner (Beam resolves all of these to its DirectRunner).
DIRECT_RUNNERS = {"DirectRunner", "SwitchingDirectRunner", "apache_beam.runners.direct.direct_runner.DirectRunner"}


def pipeline_options(beam_args: list[str] | None, *, parallel_tasks: int | None = None) -> Any:
    """Beam options from the user's args. On the local runner with `parallel_tasks` given, independent tasks
    (ingest's shards) are spread over worker processes unless the user chose a running mode."""
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_args or [])
    options = PipelineOptions(args)
    if parallel_tasks is None or not is_local(options):
        return options
    flat = " ".join(args)
    if "--direct_running_mode" not in flat:
        # one task has nothing to spread: skip starting worker processes for it
        args.append("--direct_running_mode=" + ("multi_processing" if parallel_tasks > 1 else "in_memory"))
    if "--direct_num_workers" not in flat and "in_memory" not in " ".join(args):
        args.append(f"--direct_num_workers={max(1, min(os.cpu_count() or 1, parallel_tasks))}")
    return PipelineOptions(args)


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
