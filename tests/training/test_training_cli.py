"""`cadenza train`, `sample` and `evaluate` end to end on synthetic token shards."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.training.synthetic import make_synthetic_tokens

torch.set_num_threads(2)


@pytest.mark.slow
def test_train_sample_evaluate_with_audit(tmp_path):
    make_synthetic_tokens(tmp_path / "tok", clips=16, shards=2)
    make_synthetic_tokens(tmp_path / "held", clips=6, shards=1, seed=3, key_prefix="h")
    ytids = [f"syn{i:08d}" for i in range(16)]
    (tmp_path / "weights.json").write_text(json.dumps({"grouping": "rollup", "cap": 5, "weights": {ytids[0]: 2.0}}))
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "--shards",
            str(tmp_path / "tok"),
            "--out",
            str(run),
            "--steps",
            "8",
            "--weights",
            str(tmp_path / "weights.json"),
            "--val-shards",
            str(tmp_path / "held"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((run / "config.json").read_text())["weights"].endswith("weights.json")
    assert (run / "tokens_manifest.json").exists()
    res = runner.invoke(
        app, ["train", "--shards", str(tmp_path / "tok"), "--out", str(run), "--steps", "10", "--resume"]
    )
    assert res.exit_code == 0, res.output
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 10

    out = tmp_path / "samples"
    res = runner.invoke(
        app,
        [
            "sample",
            "--run",
            str(run),
            "--prompt",
            "synthetic class 1",
            "--prompt",
            "synthetic class 2",
            "--out",
            str(out),
            "--seconds",
            "1.5",
            "--top-k",
            "8",
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    index = json.loads((out / "samples.json").read_text())
    assert [r["prompt"] for r in index] == ["synthetic class 1", "synthetic class 2"]
    audio, sr = sf.read(out / "sample-000.wav")
    assert sr == 8000 and len(audio) == int(1.5 * 20) * 400
    assert (out / "sample-001.png").stat().st_size > 1000

    audit = tmp_path / "audit"
    audit.mkdir()
    with (audit / "assignments.jsonl").open("w") as f:
        for i in range(6):
            f.write(
                json.dumps(
                    {
                        "ytid": f"hsyn{i:08d}"[-11:],
                        "key": "",
                        "row": i,
                        "groups": {"region": ["north" if i < 3 else "south"], "genre": ["rock"]},
                        "rollup": "global_north" if i < 3 else "global_south",
                        "evidence": [],
                    }
                )
                + "\n"
            )
    ev = tmp_path / "eval"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--run",
            str(run),
            "--shards",
            str(tmp_path / "held"),
            "--out",
            str(ev),
            "--audit",
            str(audit),
            "--num-samples",
            "4",
            "--seconds",
            "1.5",
            "--label-grouping",
            "region",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((ev / "metrics.json").read_text())
    assert m["nll"]["clips"] == 6 and len(m["nll"]["nll_acoustic_per_codebook"]) == 2
    assert m["generated"]["clips"] == 4
    assert 0.0 <= m["generated"]["semantic"]["js_divergence"] <= 0.7
    assert m["generated"]["frechet_audio_feature_distance"] >= 0.0
    assert "memorization_generated" in m["generated"]
    region = m["by_group"]["region"]
    assert region["north"]["clips_heldout"] == 3 and region["south"]["clips_heldout"] == 3
    assert region["north"]["generated"]["clips"] == 3 and region["south"]["generated"]["clips"] == 1
    assert set(m["by_group"]["rollup"]) == {"global_north", "global_south"}
    html = (ev / "report.html").read_text()
    assert "Held-out NLL by region" in html or "nll_by_region.png" in html
    assert len(list((ev / "wavs").glob("*.wav"))) == 8
    cg = m["caption_gain"]
    assert cg["clips"] == 6 and len(cg["acoustic_per_codebook"]) == 2
    assert cg["clips_with_other_group_caption"] == 6  # every clip scored with a caption of the other region
    assert cg["semantic"]["ci95"][0] <= cg["semantic"]["gain"] <= cg["semantic"]["ci95"][1]
    assert m["distances"]["kad_floor"]["value"] == m["distances"]["kad_floor"]["value"]  # measured, not NaN
    assert m["adherence"]["classes"] == ["north", "south"] and m["adherence"]["samples"] == 4
    assert set(m["mainstream_pull"]["labels"]) == {"north", "south"}
    assert region["north"]["caption_gain"]["clips"] == 3
    assert region["north"]["adherence"]["samples"] == 3 and "flagged" in region["south"]["mainstream_pull"]
    assert "pulled to the mainstream" in (ev / "report.html").read_text()
    assert "Caption information gain" in html and "caption_gain.png" in html and "distances.png" in html
    assert "Pull toward the mainstream" in html and "adherence.png" in html

    # a missing embedding model: one line on stderr saying what to download, exit 2
    res = runner.invoke(
        app,
        ["evaluate", "--run", str(run), "--shards", str(tmp_path / "held"), "--out", str(tmp_path / "ev2"),
         "--embeddings", f"hf:{tmp_path / 'no-clap'}"],
    )
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "--embeddings hf:" in err and "download" in err, err
