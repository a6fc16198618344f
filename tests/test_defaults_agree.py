"""The CLI, the stage configs, cadenza.stages and the DAGs give every shared setting the same default: the one
in cadenza.formats.defaults. Each is read where the layer keeps it: the click option (what `--help` shows),
the dataclass field, the stage function's keyword, the DAG's Param (from the DAG file's syntax tree, so
Airflow is not needed)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from cadenza import stages
from cadenza.audit import AuditConfig
from cadenza.cli import app, main
from cadenza.codec.evaluate import CodecEvalConfig
from cadenza.codec.trainer import CodecTrainConfig
from cadenza.evaluation.evaluate import EvalConfig
from cadenza.formats import defaults
from cadenza.musiccaps import load_musiccaps, load_ontology
from cadenza.pipelines.ingest.run import IngestConfig
from cadenza.pipelines.tokenize.config import TokenizeConfig
from cadenza.pipelines.tokenize.setup import fit_kmeans
from cadenza.training.sampler import SampleConfig
from cadenza.training.trainer import TrainConfig

DAGS = Path(__file__).resolve().parents[1] / "dags"


def cli(*path_and_option: str) -> tuple[str, Any]:
    """The default of a CLI option: cli("codec", "train", "preset") is `cadenza codec train --preset`'s."""
    *path, option = path_and_option
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    (param,) = [p for p in command.params if p.name == option]
    default = param.default
    return f"cadenza {' '.join(path)} ({option})", default.value if hasattr(default, "value") else default


def config(cls: type, field: str) -> tuple[str, Any]:
    (f,) = [f for f in dataclasses.fields(cls) if f.name == field]
    return f"{cls.__name__}.{field}", f.default


def stage(name: str, keyword: str) -> tuple[str, Any]:
    return function(getattr(stages, name), keyword)


def function(fn: Any, keyword: str) -> tuple[str, Any]:
    return f"{fn.__module__}.{fn.__name__}({keyword}=)", inspect.signature(fn).parameters[keyword].default


def dag(file: str, param: str) -> tuple[str, Any]:
    return f"dags/{file}.py ({param})", dag_params(file)[param]


def dag_params(file: str) -> dict[str, Any]:
    """name -> default of every Param in the @dag(params={...}) of a DAG file, each default evaluated with the
    file's own cadenza imports (the DAG reads its defaults from cadenza.formats.defaults)."""
    tree = ast.parse((DAGS / f"{file}.py").read_text())
    namespace: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cadenza"):
            exec(compile(ast.Module([node], type_ignores=[]), file, "exec"), namespace)
    (params,) = [k.value for n in ast.walk(tree) if isinstance(n, ast.Call)
                 for k in n.keywords if k.arg == "params" and isinstance(k.value, ast.Dict)]
    out = {}
    for key, value in zip(params.keys, params.values, strict=True):
        assert isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Param", ast.dump(value)
        out[ast.literal_eval(key)] = eval(compile(ast.Expression(value.args[0]), file, "eval"), namespace)
    return out


# setting -> (the default, where each layer keeps it)
SETTINGS: dict[str, tuple[Any, Callable[[], list[tuple[str, Any]]]]] = {
    "shard size": (defaults.SHARD_SIZE, lambda: [
        cli("ingest", "shard_size"), config(IngestConfig, "shard_size"), stage("ingest", "shard_size"),
        dag("musiccaps_ingest", "shard_size")]),
    "sample rate": (defaults.SAMPLE_RATE, lambda: [
        cli("ingest", "sample_rate"), config(IngestConfig, "sample_rate"), stage("ingest", "sample_rate"),
        dag("musiccaps_ingest", "sample_rate")]),
    "source URL template": (defaults.YOUTUBE_URL_TEMPLATE, lambda: [
        cli("ingest", "source_url_template"), config(IngestConfig, "source_url_template"),
        stage("ingest", "url_template"), dag("musiccaps_ingest", "url_template")]),
    # IngestConfig.ontology is None on purpose: a library call fetches no ontology unless asked to
    "ontology": (defaults.ONTOLOGY_URL, lambda: [
        cli("ingest", "ontology"), stage("ingest", "ontology"), stage("audit", "ontology"),
        dag("musiccaps_ingest", "ontology"), function(load_ontology, "spec")]),
    "MusicCaps CSV": (defaults.MUSICCAPS_CSV_URL, lambda: [
        dag("musiccaps_ingest", "csv"), function(load_musiccaps, "spec")]),
    "ingest limit": (None, lambda: [
        cli("ingest", "limit"), config(IngestConfig, "limit"), stage("ingest", "limit"),
        dag("musiccaps_ingest", "limit")]),
    "Beam runner": (defaults.BEAM_RUNNER, lambda: [stage("beam_args", "runner"), dag("musiccaps_ingest", "runner")]),
    "codec preset": (defaults.CODEC_PRESET, lambda: [
        cli("codec", "train", "preset"), config(CodecTrainConfig, "preset"), stage("codec_train", "preset")]),
    "the DAG's codec preset": (defaults.DAG_CODEC_PRESET, lambda: [dag("musiccaps_ingest", "codec_preset")]),
    "codec held-out shards": (1, lambda: [
        cli("codec", "train", "holdout_shards"), config(CodecTrainConfig, "holdout_shards"),
        stage("codec_train", "holdout_shards")]),
    "codec eval smallest group": (3, lambda: [
        cli("codec", "eval", "min_group_size"), config(CodecEvalConfig, "min_group_size")]),
    "acoustic codec": (defaults.ACOUSTIC_CODEC, lambda: [
        cli("tokenize", "acoustic"), config(TokenizeConfig, "acoustic"), stage("tokenize", "acoustic"),
        dag("musiccaps_ingest", "acoustic")]),
    "text encoder": (defaults.TEXT_ENCODER, lambda: [
        cli("tokenize", "text"), config(TokenizeConfig, "text"), stage("tokenize", "text"),
        dag("musiccaps_ingest", "text")]),
    "k-means clusters": (defaults.CLUSTERS, lambda: [
        cli("tokenize", "clusters"), cli("tokenize", "fit-kmeans", "clusters"), config(TokenizeConfig, "clusters"),
        stage("tokenize", "clusters"), dag("musiccaps_ingest", "clusters"), function(fit_kmeans, "clusters")]),
    "k-means clips sampled": (1000, lambda: [
        cli("tokenize", "fit-kmeans", "max_clips"), function(fit_kmeans, "max_clips")]),
    "k-means frames per clip": (100, lambda: [
        cli("tokenize", "fit-kmeans", "frames_per_clip"), function(fit_kmeans, "frames_per_clip")]),
    "random-init codec": (False, lambda: [
        cli("tokenize", "codec_random_init"), config(TokenizeConfig, "codec_random_init"),
        stage("tokenize", "random_init"), dag("musiccaps_ingest", "random_init")]),
    "region evidence": ("both", lambda: [
        cli("audit", "region_evidence"), config(AuditConfig, "region_evidence"), stage("audit", "region_evidence")]),
    "model preset": (defaults.MODEL_PRESET, lambda: [
        cli("train", "config"), config(TrainConfig, "model"), stage("train", "preset"),
        dag("train_evaluate", "preset")]),
    "the chain's training steps": (defaults.CHAIN_TRAIN_STEPS, lambda: [
        stage("train", "steps"), dag("train_evaluate", "max_steps")]),
    "held-out token shards": (1, lambda: [
        stage("split_tokens", "heldout_shards"), dag("train_evaluate", "heldout_shards")]),
    "hold out by": ("shard", lambda: [stage("split_tokens", "holdout_by"), dag("train_evaluate", "holdout_by")]),
    "sample seconds": (defaults.SAMPLE_SECONDS, lambda: [
        cli("sample", "seconds"), config(SampleConfig, "seconds"), stage("sample", "seconds"),
        dag("train_evaluate", "seconds")]),
    "evaluation captions": (defaults.EVAL_SAMPLES, lambda: [
        cli("evaluate", "num_samples"), config(EvalConfig, "num_samples")]),
    "the chain's evaluation captions": (defaults.CHAIN_EVAL_SAMPLES, lambda: [
        stage("evaluate", "num_samples"), dag("train_evaluate", "num_samples")]),
    "embeddings": (defaults.EMBEDDINGS, lambda: [
        cli("evaluate", "embeddings"), config(EvalConfig, "embeddings"), stage("evaluate", "embeddings")]),
    "reference clips": (defaults.MAX_REFERENCES, lambda: [
        config(EvalConfig, "max_references"), stage("evaluate", "max_references")]),
    "DAG output root": (defaults.DAG_OUT_DIR, lambda: [
        dag("musiccaps_ingest", "out_dir"), dag("train_evaluate", "out_dir")]),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_layer_has_the_one_default(setting):
    expected, places = SETTINGS[setting]
    wrong = {where: value for where, value in places() if value != expected or type(value) is not type(expected)}
    assert not wrong, f"{setting}: expected {expected!r} everywhere; differs in {wrong}"


def test_the_dags_param_defaults_are_all_checked_or_plain():
    """A DAG param with a default that is neither checked above nor trivially empty is a fourth layer unchecked."""
    checked = {(where.split(" ")[0], where.split("(")[-1].rstrip(")"))
               for _, places in SETTINGS.values() for where, _ in places() if where.startswith("dags/")}
    for file in ("musiccaps_ingest", "train_evaluate"):
        for name, value in dag_params(file).items():
            if value is None or value == [] or isinstance(value, bool) or value == 0 or name == "prompts":
                continue
            assert (f"dags/{file}.py", name) in checked, f"dags/{file}.py param {name}={value!r} is not checked"


def test_preset_and_choice_names_are_the_dicts_keys():
    from cadenza.codec.presets import PRESETS as CODEC_PRESETS
    from cadenza.tokenizers.acoustic import CODECS
    from cadenza.training.model import PRESETS as MODEL_PRESETS
    from cadenza.training.trainer import SIZE_DEFAULTS

    assert tuple(CODEC_PRESETS) == defaults.CODEC_PRESETS
    assert defaults.DAG_CODEC_PRESET in defaults.CODEC_PRESETS
    assert tuple(MODEL_PRESETS) == tuple(SIZE_DEFAULTS) == defaults.MODEL_PRESETS
    assert tuple(CODECS) == defaults.ACOUSTIC_CODECS


def test_every_precision_name_is_one_the_trainer_takes():
    import torch

    from cadenza.training.trainer import resolve_precision

    cpu = torch.device("cpu")
    assert [resolve_precision(p, cpu) for p in defaults.PRECISIONS] == ["fp32", "fp32", "bf16"]
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        resolve_precision("fp16", cpu)


def test_limit_0_is_refused_in_the_same_words_by_the_cli_and_the_config(tmp_path, capsys):
    csv = tmp_path / "mc.csv"
    csv.write_text("ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,"
                   "is_audioset_eval\ngoodAAAAAAA,0,10,/m/04rlf,\"['calm']\",A calm chord.,4,False,True\n")
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--csv", str(csv), "--out", str(tmp_path / "out"), "--limit", "0"])
    assert exit_.value.code == 2
    cli_message = capsys.readouterr().err.strip().removeprefix("error: ")
    with pytest.raises(ValueError) as refused:
        IngestConfig(csv=str(csv), out=str(tmp_path / "out"), limit=0).validate()
    assert str(refused.value) == cli_message == "--limit: must be at least 1 (got 0)"
    IngestConfig(csv=str(csv), out=str(tmp_path / "out"), limit=1).validate()


def test_the_audit_commands_choices_are_the_taxonomys_names():
    """cli/audit.py spells the choices out (importing cadenza.audit would slow `--help`): they must stay these."""
    from cadenza.audit.groupings import GROUPINGS, REGION_RULES
    from cadenza.cli.audit import GroupBy, RegionEvidence

    assert tuple(GroupBy) == GROUPINGS
    assert tuple(RegionEvidence) == REGION_RULES
