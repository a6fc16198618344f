"""Hostile checkpoints: loading (`load_trained`, `sample`, `evaluate`, resume in `train`) refuses each one
with a CheckpointError naming the file, and never unpickles anything (the pickles would create a marker)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cadenza.evaluation.evaluate import evaluate
from cadenza.training.checkpoint import CheckpointError, latest_checkpoint
from cadenza.training.sampler import sample
from cadenza.training.synthetic import SyntheticText, ToneDecoder
from cadenza.training.trainer import TrainConfig, load_trained, train

torch.set_num_threads(1)


class _Boom:
    marker = ""

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "unpickled!"))


def _boom(marker: Path) -> _Boom:
    b = _Boom()
    b.marker = str(marker)
    return b


def _cfg(tokens: Path, run: Path, **kw) -> TrainConfig:
    """The tiny run of the `trained` fixture (tests/hostile/conftest.py), for resuming it."""
    base = dict(steps=2, schedule_steps=2, batch_size=4, warmup_steps=1, log_every=1, ckpt_every=2,
                shuffle_buffer=8, crop_seconds=1.0)
    return TrainConfig.preset("tiny", str(tokens), str(run), **{**base, **kw})


def _rewrite_json(path: Path, change) -> None:
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


def _torch_pickle(ckpt: Path, name: str, marker: Path) -> None:
    torch.save({"weights": _boom(marker)}, ckpt / name)  # a .pt: zip + pickle


def _raw_pickle(ckpt: Path, name: str, marker: Path) -> None:
    (ckpt / name).write_bytes(pickle.dumps(_boom(marker)))


def _reshape(ckpt: Path, name: str, marker: Path) -> None:
    tensors = load_file(ckpt / name)
    key = sorted(tensors)[0]
    tensors[key] = torch.zeros(*[d + 1 for d in tensors[key].shape])
    save_file(tensors, ckpt / name)


def _extra_tensor(ckpt: Path, name: str, marker: Path) -> None:
    save_file({**load_file(ckpt / name), "evil.extra": torch.zeros(3)}, ckpt / name)


def _drop_tensor(ckpt: Path, name: str, marker: Path) -> None:
    tensors = load_file(ckpt / name)
    tensors.pop(sorted(tensors)[-1])
    save_file(tensors, ckpt / name)


def _huge_header(ckpt: Path, name: str, marker: Path) -> None:
    (ckpt / name).write_bytes((2**62).to_bytes(8, "little") + b"{}")


def _latest(path) -> object:
    def change(ckpt: Path, name: str, marker: Path) -> None:
        (ckpt.parent / "latest.json").write_text(json.dumps({"path": path}))
    return change


def _pt_as_latest(ckpt: Path, name: str, marker: Path) -> None:
    torch.save(_boom(marker), ckpt.parent / "step-99999999.pt")
    (ckpt.parent / "latest.json").write_text(json.dumps({"path": "step-99999999.pt"}))


def _state(change) -> object:
    return lambda ckpt, name, marker: _rewrite_json(ckpt / "state.json", change)


CASES = {
    "pickle_pt_as_model": (_torch_pickle, "model.safetensors", "not a safetensors file"),
    "raw_pickle_as_model": (_raw_pickle, "model.safetensors", "not a safetensors file"),
    "model_wrong_shapes": (_reshape, "model.safetensors", "size mismatch"),
    "model_extra_tensor": (_extra_tensor, "model.safetensors", "evil.extra"),
    "model_missing_tensor": (_drop_tensor, "model.safetensors", "Missing key"),
    "model_huge_header": (_huge_header, "model.safetensors", "not a safetensors file"),
    "latest_points_outside": (_latest("../../../etc"), "latest.json", "refusing checkpoint path '../../../etc'"),
    "latest_points_to_pt": (_pt_as_latest, "latest.json", "refusing checkpoint path 'step-99999999.pt'"),
    "latest_not_json": (lambda c, n, m: (c.parent / "latest.json").write_bytes(pickle.dumps(_boom(m))),
                        "latest.json", "not a checkpoint marker"),
    "state_unknown_model_key": (_state(lambda d: d["model_configs"]["semantic"].update(evil_layers=99)),
                                "state.json", "ModelConfig: unknown field(s) evil_layers;"),
    "state_unknown_spec_key": (_state(lambda d: d["token_spec"].update(evil=1)), "state.json", "unknown ['evil']"),
    "state_missing_spec": (_state(lambda d: d.pop("token_spec")), "state.json", "KeyError"),
    "state_not_json": (lambda c, n, m: (c / "state.json").write_bytes(pickle.dumps(_boom(m))), "state.json",
                       "unreadable checkpoint state"),
}


@pytest.fixture
def hostile_run(tmp_path, trained, request) -> tuple[Path, Path, str]:
    case = request.param
    tokens, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    marker = tmp_path / "UNPICKLED"
    corrupt, name, msg = CASES[case]
    corrupt(latest_checkpoint(copy), name, marker)
    yield copy, marker, (name, msg)
    assert not marker.exists(), "a checkpoint file was unpickled"


@pytest.mark.parametrize("hostile_run", list(CASES), indirect=True)
def test_load_trained_refuses(hostile_run):
    run, _, (name, msg) = hostile_run
    with pytest.raises(CheckpointError) as err:
        load_trained(run)
    assert name in str(err.value) and msg in str(err.value)


@pytest.mark.parametrize("hostile_run", ["pickle_pt_as_model", "model_wrong_shapes", "state_unknown_model_key"],
                         indirect=True)
def test_sample_and_evaluate_refuse(hostile_run, trained, tmp_path):
    run, _, (name, msg) = hostile_run
    with pytest.raises(CheckpointError, match=name):
        sample(run, ["synthetic class 1"], tmp_path / "out", text_encoder=SyntheticText(), decoder=ToneDecoder())
    with pytest.raises(CheckpointError, match=name):
        evaluate(run, str(trained[0]), tmp_path / "eval", decoder=ToneDecoder())
    assert not (tmp_path / "out" / "samples.json").exists()


@pytest.mark.parametrize("hostile_run", ["raw_pickle_as_model", "latest_points_outside", "state_unknown_spec_key"],
                         indirect=True)
def test_resume_refuses(hostile_run, trained):
    run, _, (name, msg) = hostile_run
    with pytest.raises(CheckpointError, match=name):
        train(_cfg(trained[0], run, steps=4, schedule_steps=4, resume=True))


def test_resume_refuses_optimizer_of_other_shapes(tmp_path, trained):
    run = tmp_path / "run"
    shutil.copytree(trained[1], run)
    _reshape(latest_checkpoint(run), "optimizer.safetensors", tmp_path / "UNPICKLED")
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        train(_cfg(trained[0], run, steps=4, schedule_steps=4, resume=True))


def test_config_with_unknown_keys_is_refused(trained):
    cfg = json.loads((trained[1] / "config.json").read_text())
    with pytest.raises(ValueError, match=r"TrainConfig: unknown field\(s\) evil;"):
        TrainConfig.from_dict({**cfg, "evil": "__import__('os')"})
