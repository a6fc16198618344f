"""The default local runner never tries Prism (a binary downloaded from github.com); named runners pass through."""

from __future__ import annotations

import os

import apache_beam as beam
import pytest
from apache_beam.runners.portability import prism_runner
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.util import assert_that, equal_to

from cadenza.pipelines.beam import make_pipeline, pipeline_options

DRIVER = os.getpid()  # pickled by value into the workers


@pytest.mark.parametrize("args", [[], ["--runner=DirectRunner"], ["--runner", "DirectRunner"]])
def test_the_local_runner_is_the_direct_runners_fn_api_path(args):
    assert isinstance(make_pipeline(pipeline_options(args)).runner, fn_runner.FnApiRunner)


def test_a_named_runner_is_taken_as_given():
    p = make_pipeline(pipeline_options(["--runner=PortableRunner", "--job_endpoint=embed"]))
    assert type(p.runner).__name__ == "PortableRunner"


def test_a_local_run_never_tries_prism(monkeypatch):
    tried = []
    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", lambda *a, **k: tried.append(a))
    with make_pipeline(pipeline_options(["--direct_running_mode=in_memory"])) as p:
        doubled = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
        assert_that(doubled, equal_to([2, 4, 6]))
    assert tried == []


def test_the_local_runner_spreads_tasks_over_worker_processes(monkeypatch):
    """Ingest's default: several tasks run in SDK worker processes, still without a Prism attempt."""
    tried = []
    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", lambda *a, **k: tried.append(a))
    options = pipeline_options([], parallel_tasks=2)
    assert options.get_all_options()["direct_running_mode"] == "multi_processing"
    with make_pipeline(options) as p:
        pids = p | beam.Create(["a", "b"]) | beam.Reshuffle() | beam.Map(lambda _: os.getpid() != DRIVER)
        assert_that(pids, equal_to([True, True]))
    assert tried == []



@pytest.mark.parametrize("args", [["--runner", "DaskRunner"], ["--runner=DaskRunner"],
                                  ["--runner", "apache_beam.runners.dask.dask_runner.DaskRunner"]])
def test_dask_by_its_short_name_with_a_partition_per_task(args):
    """Beam refuses a bare `DaskRunner`; cadenza maps it. Dask's Reshuffle is a no-op, so each task gets a
    partition (a partition is a bundle, run by one worker) unless the user chose the layout."""
    from apache_beam.runners.dask.dask_runner import DaskRunner

    options = pipeline_options([*args, "--dask_client_address", "tcp://127.0.0.1:1"], parallel_tasks=3)
    assert isinstance(make_pipeline(options).runner, DaskRunner)
    got = options.get_all_options()
    assert got["address"] == "tcp://127.0.0.1:1" and got["npartitions"] == 3
    assert "direct_running_mode" not in options.get_all_options(drop_default=True)
    chosen = pipeline_options([*args, "--dask_partition_size", "2"], parallel_tasks=3).get_all_options()
    assert chosen["npartitions"] is None and chosen["partition_size"] == 2


def test_the_cli_takes_beams_dask_options(tmp_path):
    from ingest_testkit import write_csv
    from typer.testing import CliRunner

    from cadenza.cli import app

    csv = write_csv(tmp_path / "mc.csv", [("not-an-id", 0, 10)])  # no valid row: no pipeline is run
    base = ["ingest", "--csv", str(csv), "--out", str(tmp_path / "o"), "--ontology", "none", "--no-progress",
            "--runner", "DaskRunner"]
    res = CliRunner().invoke(app, [*base, "--dask_client_adress", "tcp://127.0.0.1:1"])
    assert res.exit_code == 2 and "did you mean --dask_client_address?" in res.output
    res = CliRunner().invoke(app, [*base, "--dask_client_address", "tcp://127.0.0.1:1"])
    assert "no such option" not in res.output and (tmp_path / "o" / "manifest.json").is_file(), res.output
