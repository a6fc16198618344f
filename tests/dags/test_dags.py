"""The Airflow DAGs: they import cleanly, have the intended shape, and run with dag.test().

How dag.test() works here (Airflow 3.3): Airflow reads its configuration once, when it is first imported,
so AIRFLOW_HOME, the DAGs folder and a SQLite database in a temp dir are set in the environment before
that; then the metadata tables are created in-process (airflow.utils.db.initdb, what `airflow db migrate`
does on an empty database). dag.test() first syncs the DAGs folder's bundle into the database (a DAG must
live in a file there, or it fails with "the dag is not serialized"), then runs every task in this process
without a scheduler, so a loopback server started by the test is reachable from the tasks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is None:
    pytest.skip("apache-airflow (the `dags` extra) is not installed", allow_module_level=True)

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"

MECHANISM_DAG = '''
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="cadenza_mechanism_check", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
     catchup=False, params={"x": 3, "fail": False})
def cadenza_mechanism_check():
    @task
    def produce(params=None) -> dict:
        if params["fail"]:
            raise RuntimeError("planted failure")
        return {"v": params["x"]}

    @task
    def double(d: dict) -> int:
        return d["v"] * 2

    double(produce())


cadenza_mechanism_check()
'''


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    for f in REPO_DAGS.glob("*.py"):
        shutil.copy(f, dags / f.name)
    (dags / "cadenza_mechanism_check.py").write_text(MECHANISM_DAG)
    if "airflow.configuration" in sys.modules:
        from airflow.configuration import conf

        if conf.get("core", "dags_folder") != str(dags):
            pytest.fail("airflow was imported before these tests could point AIRFLOW_HOME at a temp dir")
    saved = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")}
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    })
    from airflow.utils import db

    db.initdb()
    yield home
    # Airflow keeps the configuration it read; only the environment (incl. the AIRFLOW_CTX_* that task
    # runs export) goes back to what it was, so later tests see no trace of these
    for key in [k for k in os.environ if k.startswith("AIRFLOW")]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="module")
def repo_bag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_DAGS))


def _run_bag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(airflow_home / "dags"))


def _xcoms(dag_run) -> dict[str, object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as s:
        rows = s.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, key="return_value").all()
        return {r.task_id: json.loads(r.value) if isinstance(r.value, str) else r.value for r in rows}


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state)
            for ti in dag_run.get_task_instances()}


def test_dag_files_import_without_errors(repo_bag):
    assert repo_bag.import_errors == {}
    assert set(repo_bag.dags) == {"musiccaps_ingest", "train_evaluate"}


def test_musiccaps_ingest_structure(repo_bag):
    dag = repo_bag.dags["musiccaps_ingest"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"fetch_metadata", "ingest", "codec_train", "tokenize", "audit", "codec_eval"}
    assert tasks["ingest"].upstream_task_ids == {"fetch_metadata"}
    assert tasks["codec_train"].upstream_task_ids == {"ingest"}
    assert tasks["tokenize"].upstream_task_ids == {"ingest", "codec_train"}
    assert "tokenize" in tasks["audit"].upstream_task_ids
    assert {"codec_train", "audit"} <= tasks["codec_eval"].upstream_task_ids
    for name in ("fetch_metadata", "ingest"):  # network-facing: retried with exponential backoff
        t = tasks[name]
        assert t.retries == 3 and t.retry_exponential_backoff == 2.0
        assert t.retry_delay == timedelta(seconds=30) and t.max_retry_delay == timedelta(minutes=10)
    assert tasks["tokenize"].retries == 0
    params = dag.params.dump()
    assert {"csv", "ontology", "out_dir", "url_template", "runner", "beam_options", "shard_size", "sample_rate",
            "limit", "acoustic", "random_init", "text", "train_codec", "codec_preset", "codec_weights"} <= set(params)
    assert params["runner"] == "DirectRunner" and params["url_template"].endswith("{ytid}")
    assert "cadenza" in dag.tags and dag.max_active_runs == 1


def test_train_evaluate_structure(repo_bag):
    dag = repo_bag.dags["train_evaluate"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"split_tokens", "train", "sample", "evaluate", "report"}
    assert tasks["report"].upstream_task_ids == {"evaluate"}
    assert tasks["train"].upstream_task_ids == {"split_tokens"}
    assert tasks["sample"].upstream_task_ids == {"train"}
    assert tasks["evaluate"].upstream_task_ids == {"split_tokens", "train", "sample"}
    assert {"out_dir", "tokens_dir", "audit_dir", "preset", "max_steps", "num_samples", "seed"} <= set(
        dag.params.dump())


def test_params_are_validated(repo_bag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(repo_bag.dags["musiccaps_ingest"].params)
    with pytest.raises(ParamValidationError, match="shard_size: 0 is less than the minimum of 1"):
        params["shard_size"] = 0
    with pytest.raises(ParamValidationError, match="beam_options"):
        params["beam_options"] = "--direct_num_workers=2"  # a list is expected
    params["limit"] = 10
    assert params.validate()["limit"] == 10


def test_dag_test_mechanism_on_a_trivial_dag(airflow_home):
    dag = _run_bag(airflow_home).dags["cadenza_mechanism_check"]
    ok = dag.test(run_conf={"x": 5})
    assert str(ok.state) in ("success", "DagRunState.SUCCESS")
    assert _xcoms(ok) == {"produce": {"v": 5}, "double": 10}
    failed = dag.test(run_conf={"fail": True})
    assert str(failed.state) in ("failed", "DagRunState.FAILED")
    assert _states(failed) == {"produce": "failed", "double": "upstream_failed"}


def test_a_failing_stage_fails_the_run_with_a_clear_message(airflow_home, tmp_path, capfd):
    dag = _run_bag(airflow_home).dags["musiccaps_ingest"]
    dag.get_task("fetch_metadata").retries = 0  # do not wait out the backoff in a test
    run = dag.test(run_conf={"csv": str(tmp_path / "missing.csv"), "out_dir": str(tmp_path / "out")})
    assert str(run.state) in ("failed", "DagRunState.FAILED")
    assert _states(run) == {"fetch_metadata": "failed", "ingest": "upstream_failed", "codec_train": "upstream_failed",
                            "tokenize": "upstream_failed", "audit": "upstream_failed", "codec_eval": "upstream_failed"}
    out, err = capfd.readouterr()
    assert "stage 'fetch_metadata' failed: SourceError" in out + err and "missing.csv" in out + err


def _chain_missing() -> str | None:
    from cadenza.demo.run import missing_stages

    missing = missing_stages(offline=True)
    return f"stages not merged yet: {', '.join(missing)}" if missing else None


@pytest.mark.slow
def test_both_dags_end_to_end_on_demo_data(airflow_home, tmp_path):
    assert _chain_missing() is None
    from cadenza.demo.dataset import build_demo_dataset
    from cadenza.testing import mediaserver

    ds = build_demo_dataset(tmp_path / "demo-data", n_clips=7, seed=0, progress=False)
    out = tmp_path / "out"
    bag = _run_bag(airflow_home)
    with mediaserver.MediaServer(ds.media_dir) as server:
        ingest_run = bag.dags["musiccaps_ingest"].test(run_conf={
            "csv": str(ds.csv_path), "ontology": str(ds.ontology_path), "out_dir": str(out),
            "url_template": server.url_template(ds.audio_format), "shard_size": 4, "clusters": 32,
            "train_codec": True, "codec_preset": "demo", "codec_steps": 10, "beam_options": ["--direct_num_workers=1"],
        })
    assert str(ingest_run.state) in ("success", "DagRunState.SUCCESS"), _states(ingest_run)
    x = _xcoms(ingest_run)
    assert x["fetch_metadata"]["valid"] == 8 and x["fetch_metadata"]["rejected"] == 2
    assert x["ingest"]["clips_written"] == 7  # the planted missing-media row failed at fetch
    assert sum(x["ingest"]["failures_by_category"].values()) >= 1
    assert Path(x["tokenize"]["manifest"]).is_file() and x["tokenize"]["random_weights"] is False
    assert x["codec_train"]["steps"] == 10 and Path(x["codec_train"]["record"]).is_file()
    assert Path(x["audit"]["report_html"]).is_file() and Path(x["codec_eval"]["metrics"]).is_file()

    train_run = bag.dags["train_evaluate"].test(run_conf={
        "out_dir": str(out), "max_steps": 3, "num_samples": 2, "seconds": 1.0,
        "prompts": ["a house track"]})
    assert str(train_run.state) in ("success", "DagRunState.SUCCESS"), _states(train_run)
    y = _xcoms(train_run)
    assert y["split_tokens"]["heldout_shards"] == 1
    assert y["train"]["steps"] == 3
    assert Path(y["sample"]["index"]).is_file()
    assert Path(y["evaluate"]["report_html"]).is_file() and y["evaluate"]["by_group"] is True
    assert Path(y["report"]["report_html"]).is_file() and y["report"]["links"]["nll_acoustic"] == "ok"
