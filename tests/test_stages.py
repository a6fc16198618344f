"""The stage glue shared by the DAGs and the demo: options, metadata fetch, errors, audit breakdown."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cadenza import stages as orch
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
    assert set(dirs) == {"metadata", "audio", "codec", "tokens", "audit", "codec_eval", "split", "run", "samples",
                         "eval", "report"}


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


def test_split_tokens_makes_disjoint_views(tmp_path):
    from cadenza.formats.token_spec import load_token_dir
    from cadenza.training.synthetic import make_synthetic_tokens

    make_synthetic_tokens(str(tmp_path / "tokens"), clips=12, shards=3, seconds=1.0)
    out = orch.split_tokens(str(tmp_path / "tokens"), str(tmp_path / "split"), heldout_shards=1)
    assert (out["train_shards"], out["heldout_shards"]) == (2, 1)
    train_manifest, train_shards = load_token_dir(out["train"])
    held_manifest, held_shards = load_token_dir(out["heldout"])
    assert {p.rsplit("/", 1)[-1] for p in train_shards} == {"tokens-000000.tar", "tokens-000001.tar"}
    assert [p.rsplit("/", 1)[-1] for p in held_shards] == ["tokens-000002.tar"]
    assert train_manifest["tokenizers"] == held_manifest["tokenizers"]
    assert held_manifest["split"]["name"] == "heldout"
    # views link to the data; a rerun with another split leaves no stale shard behind
    assert (tmp_path / "split" / "train" / "shards" / "tokens-000000.tar").is_symlink()
    orch.split_tokens(str(tmp_path / "tokens"), str(tmp_path / "split"), heldout_shards=2)
    assert len(load_token_dir(out["train"])[1]) == 1 and len(load_token_dir(out["heldout"])[1]) == 2
    with pytest.raises(orch.StageError, match="at least 2"):
        make_synthetic_tokens(str(tmp_path / "one"), clips=2, shards=1, seconds=1.0)
        orch.split_tokens(str(tmp_path / "one"), str(tmp_path / "split1"))


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


def test_split_tokens_holds_out_whole_annotators(tmp_path):
    import csv

    from cadenza.formats.shards import iter_tar_samples
    from cadenza.formats.token_spec import load_token_dir
    from cadenza.training.synthetic import make_synthetic_tokens

    make_synthetic_tokens(str(tmp_path / "tokens"), clips=24, shards=3, seconds=1.0)
    authors = [0] * 12 + [1] * 6 + [2] * 3 + [3] * 3  # annotator of clip i
    with (tmp_path / "s.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
                    "is_balanced_subset", "is_audioset_eval"])
        for i, author in enumerate(authors):
            w.writerow([f"syn{i:08d}", 0, 1, "/m/04rlf", "['piano']", "A calm piano piece.", author, False, False])
    audit = orch.audit(str(tmp_path / "s.csv"), str(tmp_path / "audit"), ontology=None,
                       weights_out=str(tmp_path / "w.json"), region_evidence="explicit", balance_annotators=True)
    metrics = json.loads(Path(audit["metrics"]).read_text())
    assert metrics["region_rule"]["rule"] == "explicit" and metrics["weights"]["balance_annotators"] is True
    assert all(abs(v - 0.25) < 0.01 for v in metrics["weights"]["annotator_shares_after"].values())
    chain = orch.report(audit["dir"], str(tmp_path / "report"))
    assert Path(chain["report_html"]).is_file() and chain["links"]["share"] == "ok"
    assert chain["links"]["nll_acoustic"].startswith("not run")
    out = orch.split_tokens(str(tmp_path / "tokens"), str(tmp_path / "split"), holdout_by="annotator",
                            audit_dir=str(tmp_path / "audit"), heldout_fraction=0.25)
    assert out["heldout_annotators"] == [2, 3]  # the smallest annotators, up to a quarter of the clips
    assert (out["train_clips"], out["heldout_clips"], out["unknown_annotator_clips"]) == (18, 6, 0)

    def authors_in(view: str) -> set[int]:
        manifest, shards = load_token_dir(view)
        keys = [s["__key__"] for p in shards for s in iter_tar_samples(p)]
        return {authors[int(k[3:11])] for k in keys}

    assert authors_in(out["train"]) == {0, 1} and authors_in(out["heldout"]) == {2, 3}
    assert load_token_dir(out["heldout"])[0]["split"]["annotators"] == [2, 3]
    # back to a shard split in the same place: no stale rewritten shard is left behind
    orch.split_tokens(str(tmp_path / "tokens"), str(tmp_path / "split"), heldout_shards=1)
    assert len(load_token_dir(out["train"])[1]) == 2 and len(load_token_dir(out["heldout"])[1]) == 1
    with pytest.raises(orch.StageError, match="needs the audit dir"):
        orch.split_tokens(str(tmp_path / "tokens"), str(tmp_path / "split"), holdout_by="annotator")


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_train_stage_gets_the_presets_batch_crop_and_learning_rate(preset, tmp_path):
    """The DAG's and the demo's train is `cadenza train --config PRESET` with the chain's steps."""
    from cadenza.training.trainer import TrainConfig

    stage = orch.train_config(str(tmp_path / "tokens"), str(tmp_path / "run"), preset=preset, steps=7)
    cli = TrainConfig.preset(preset, str(tmp_path / "tokens"), str(tmp_path / "run"), steps=7)
    assert stage.to_dict() == cli.to_dict()
