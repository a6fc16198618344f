"""The stage glue shared by the DAGs and the demo: options, metadata fetch, errors, audit breakdown."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cadenza import orchestration as orch
from cadenza.demo.dataset import build_demo_dataset


def test_beam_args():
    assert orch.beam_args() == ["--runner=DirectRunner"]
    assert orch.beam_args("FlinkRunner", "--flink_master=localhost:8081 --parallelism='4'") == [
        "--runner=FlinkRunner", "--flink_master=localhost:8081", "--parallelism=4"]
    assert orch.beam_args("DataflowRunner", ["--project=p", "--region=europe-west4"])[1:] == [
        "--project=p", "--region=europe-west4"]
    with pytest.raises(ValueError, match="runner parameter"):
        orch.beam_args("DirectRunner", ["--runner=SparkRunner"])


def test_stage_dirs_layout(tmp_path):
    dirs = orch.stage_dirs(tmp_path)
    assert dirs["audio"] == str(tmp_path / "audio") and dirs["tokens"] == str(tmp_path / "tokens")
    assert set(dirs) == {"metadata", "audio", "tokens", "audit", "run", "samples", "eval"}


def test_fetch_metadata_on_the_demo_csv(tmp_path):
    ds = build_demo_dataset(tmp_path / "data", n_clips=2, seed=3, audio_format="wav", sample_rate=8000,
                            progress=False)
    out = orch.fetch_metadata(str(ds.csv_path), str(tmp_path / "metadata"))
    assert (out["rows_read"], out["valid"], out["rejected"]) == (5, 3, 2)
    assert json.loads((tmp_path / "metadata" / "validation.json").read_text())["rejected"] == 2
    rejects = [json.loads(line) for line in (tmp_path / "metadata" / "rejects.jsonl").read_text().splitlines()]
    assert {r["ytid"] for r in rejects} == {p.ytid for p in ds.planted if p.stage == "validate"}
    json.dumps(out)  # an XCom: plain JSON


def test_fetch_metadata_failures_name_the_stage_and_cause(tmp_path):
    with pytest.raises(orch.StageError, match=r"stage 'fetch_metadata' failed: SourceError: .*no such file"):
        orch.fetch_metadata(str(tmp_path / "nope.csv"), str(tmp_path / "m"))
    bad = tmp_path / "bad.csv"
    bad.write_text("ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,"
                   "is_audioset_eval\r\nshort,0,10,/m/04rlf,\"['a']\",a caption,1,False,False\r\n")
    with pytest.raises(orch.StageError, match="no valid rows"):
        orch.fetch_metadata(str(bad), str(tmp_path / "m"))
    assert (tmp_path / "m" / "rejects.jsonl").read_text().count("\n") == 1  # the reject is still recorded


def test_missing_stage_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(orch.ENTRY_POINTS, "ingest", ("cadenza.pipelines.no_such_stage", "run_ingest"))
    assert "cadenza.pipelines.no_such_stage.run_ingest is not available" in orch.stage_available("ingest")
    with pytest.raises(orch.StageError, match="stage 'ingest' failed: cannot import cadenza.pipelines.no_such"):
        orch.ingest("x.csv", "out")


def test_config_mismatch_lists_both_sides():
    @dataclasses.dataclass
    class Config:
        input_csv: str

        @classmethod
        def from_dict(cls, d):
            return cls(**d)

    with pytest.raises(orch.StageError, match=r"bad Config \['csv'\] \(fields: \['input_csv'\]\)"):
        orch._config("ingest", Config, {"csv": "a.csv"})


def test_running_wraps_errors_once():
    with pytest.raises(orch.StageError, match="stage 'train' failed: ZeroDivisionError") as info:
        with orch.running("train"):
            1 / 0  # noqa: B018
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_audit_breakdown_means_per_group(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"per_sample": [
        {"ytid": "aaaaaaaaaaa", "clap_score": 0.2, "fad_proxy": 3.0, "prompt": "x"},
        {"ytid": "bbbbbbbbbbb", "clap_score": 0.4, "fad_proxy": 1.0},
        {"ytid": "ccccccccccc", "clap_score": 0.9, "fad_proxy": 5.0},
        {"ytid": "zzzzzzzzzzz", "clap_score": 0.0},
    ]}))
    assignments = tmp_path / "assignments.jsonl"
    rows = [
        {"ytid": "aaaaaaaaaaa", "key": "aaaaaaaaaaa_0_1", "rollup": "global_north",
         "groups": {"region": ["Western"], "genre": ["electronic"]}},
        {"ytid": "bbbbbbbbbbb", "key": "bbbbbbbbbbb_0_1", "rollup": "global_north",
         "groups": {"region": ["Western"], "genre": []}},
        {"ytid": "ccccccccccc", "key": "ccccccccccc_0_1", "rollup": "global_south",
         "groups": {"region": ["South Asia"], "genre": ["classical"]}},
    ]
    assignments.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = orch.audit_breakdown(str(report), str(assignments), str(tmp_path / "eval" / "breakdown.json"))
    assert out["items"] == 4
    got = json.loads((tmp_path / "eval" / "breakdown.json").read_text())["groups"]
    assert got["rollup"]["global_north"] == {"n": 2, "clap_score": pytest.approx(0.3), "fad_proxy": pytest.approx(2.0)}
    assert got["rollup"]["global_south"]["clap_score"] == pytest.approx(0.9)
    assert got["rollup"]["unassigned"] == {"n": 1, "clap_score": 0.0}
    assert got["genre"]["unspecified"]["n"] == 1 and got["region"]["Western"]["n"] == 2


def test_audit_breakdown_needs_per_item_results(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"mean_score": 1.0}))
    (tmp_path / "a.jsonl").write_text("")
    with pytest.raises(orch.StageError, match="no per-item list"):
        orch.audit_breakdown(str(tmp_path / "r.json"), str(tmp_path / "a.jsonl"), str(tmp_path / "o.json"))


def test_stage_results_become_json_xcoms(tmp_path):
    @dataclasses.dataclass
    class TrainResult:
        steps: int
        final_loss: float
        checkpoint: str
        model: object = None

    out = orch._outputs({"dir": "run"}, TrainResult(3, 1.5, "run/checkpoints/step-3.safetensors", object()))
    # the model object cannot travel as an XCom: it is left out, the rest is kept
    assert out == {"dir": "run", "steps": 3, "final_loss": 1.5, "checkpoint": "run/checkpoints/step-3.safetensors"}
    assert json.loads(json.dumps(out))["steps"] == 3
    assert orch._outputs({"dir": "s"}, None) == {"dir": "s"}
    assert orch._outputs({"dir": "s"}, {"paths": [str(tmp_path)], "bad": {1, 2}}) == {"dir": "s",
                                                                                      "paths": [str(tmp_path)]}
