"""`cadenza report`: the chain per culture from real audit output, a real `cadenza codec eval` of a
random-weight codec, and (slow) a real trained-and-evaluated run; missing links show as "not run"."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audit_synth import generate, write_csv, write_taxonomy
from typer.testing import CliRunner

from cadenza.audit import AuditConfig, run_audit
from cadenza.audit.chain_report import CODEC_METRICS, build_chain, measure
from cadenza.cli import app
from cadenza.formats import shards, storage

runner = CliRunner()
SR = 24_000  # the codec's rate: no resampling in codec eval


def _audit(tmp_path, rows, alive) -> str:
    csv = write_csv(tmp_path / "s.csv", rows)
    available = tmp_path / "available.txt"
    available.write_text("\n".join(sorted(alive)) + "\n")
    out = tmp_path / "audit"
    run_audit(AuditConfig(csv=str(csv), out=str(out), taxonomy=str(write_taxonomy(tmp_path / "t.yaml")),
                          available=str(available), plots=False))
    return str(out)


def _codec_eval(tmp_path, audit: str) -> dict:
    """A real `cadenza codec eval`, per audit group, of a random-weight codec on an audio shard of music for
    three regions' clips. south_c's clips are north_a's at 1/100 of the level: the codec's STFT distance blows up
    on them (spectral convergence is relative to the quiet input's magnitude), while SI-SNR, being
    scale-invariant, stays as north_a's and log-mel L1 gets better, so south_c is worse on one distance only."""
    from cadenza.demo.synth import render
    from cadenza.tokenizers.acoustic_loading import load_acoustic, save_codec

    regions: dict[str, list[str]] = {}
    for line in (Path(audit) / "assignments.jsonl").read_text().splitlines():
        a = json.loads(line)
        if len(a["groups"].get("region") or []) == 1:
            regions.setdefault(a["groups"]["region"][0], []).append(a["ytid"])
    styles = ["hindustani", "chiptune", "house", "gamelan", "pad", "west_african"]
    music = {g: [render(st, seed=seed + i, duration_s=2.0, sr=SR) for i, st in enumerate(styles)]
             for g, seed in (("north_a", 0), ("north_b", 10))}
    music["south_c"] = [(0.01 * x).astype(np.float32) for x in music["north_a"]]
    samples = []
    for group, clips in music.items():
        for ytid, audio in zip(sorted(regions[group]), clips, strict=False):
            key, buf = f"{ytid}_00000000_00002000", io.BytesIO()
            sf.write(buf, audio, SR, format="FLAC", subtype="PCM_16")
            samples.append({"__key__": key, "flac": buf.getvalue(), "txt": group,
                            "json": json.dumps({"ytid": ytid, "key": key, "sample_rate": SR})})
    audio_dir = tmp_path / "audio"
    shards.write_shard(str(audio_dir / "shards" / shards.shard_name("audio", 0)), samples, {"samples": len(samples)})
    storage.write_json_atomic(str(audio_dir / "manifest.json"), {"kind": "audio", "clips_written": len(samples)})
    save_codec(load_acoustic("encodec_24khz", random_init=True, small=True, bandwidth=1.5), str(tmp_path / "rc"))
    res = runner.invoke(app, ["codec", "eval", "--codec", str(tmp_path / "rc"), "--shards", str(audio_dir),
                              "--audit", audit, "--out", str(tmp_path / "codec")])
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "codec" / "metrics.json").read_text())


def test_measure_reads_numbers_and_intervals():
    assert measure(2.5) == {"value": 2.5, "ci": None, "n": None, "flag": False}
    cell = measure({"mean": 1.0, "ci_low": 0.8, "ci_high": 1.2, "n": 9, "flag": True})
    assert cell == {"value": 1.0, "ci": [0.8, 1.2], "n": 9, "flag": True}
    for bad in (None, "x", {"mean": "x"}, float("nan"), True, {"ci_low": 1}):
        assert measure(bad) is None, bad


def test_chain_from_audit_and_codec_eval_with_missing_links(tmp_path):
    rows, alive = generate(600, seed=1, planted=True)
    audit = _audit(tmp_path, rows, alive)
    codec_metrics = _codec_eval(tmp_path, audit)
    broken_eval = tmp_path / "eval"
    broken_eval.mkdir()
    (broken_eval / "metrics.json").write_text("{not json")
    out = tmp_path / "chain"
    res = runner.invoke(app, ["report", "--audit", audit, "--codec-eval", str(tmp_path / "codec"),
                              "--eval", str(broken_eval), "--out", str(out)])
    assert res.exit_code == 0, res.output
    chain = json.loads((out / "chain.json").read_text())
    cols = {c["key"]: c for c in chain["columns"]}
    assert cols["share"]["status"] == "ok" and cols["survival"]["status"] == "ok"
    # the audit planted lower survival for south_d: it is flagged worse in the chain
    assert cols["survival"]["cells"]["region"]["south_d"]["flag"] is True
    assert cols["survival"]["cells"]["region"]["north_a"]["flag"] is False
    share = cols["share"]["cells"]["region"]["north_a"]
    assert share["ci"][0] < share["value"] < share["ci"][1]
    # codec eval flags south_c on the STFT distance alone; the page marks that column only
    evaluated = codec_metrics["by_group"]["region"]
    assert evaluated["south_c"]["worse_on"] == ["stft_distance"], evaluated["south_c"]
    assert set(cols) >= {f"codec_{m}" for m in CODEC_METRICS if m in codec_metrics["overall"]}
    assert cols["codec_stft_distance"]["cells"]["region"]["south_c"]["flag"] is True
    assert cols["codec_log_mel_l1"]["cells"]["region"]["south_c"]["flag"] is False
    assert cols["codec_si_snr"]["cells"]["region"]["south_c"]["flag"] is False
    for grouping, groups in codec_metrics["by_group"].items():
        for group, row in groups.items():
            for m in row["worse_on"]:
                assert cols[f"codec_{m}"]["cells"][grouping][group]["flag"] is True, (grouping, group, m)
    north_a, written = cols["codec_log_mel_l1"]["cells"]["region"]["north_a"], evaluated["north_a"]["log_mel_l1"]
    assert north_a["ci"] == [written["ci_low"], written["ci_high"]]
    assert north_a["n"] == 6 and cols["codec_si_snr"]["higher_is_better"] is True
    for key in ("nll_semantic", "caption_gain", "prompt_adherence", "mainstream_pull"):
        assert cols[key]["status"].startswith("not run") and "not readable JSON" in cols[key]["status"]
    html = (out / "chain.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and 'src="http' not in html
    assert "not run" in html and "WORSE" in html and 'id="table-region"' in html
    assert "Download survival: ok" in res.output


def test_chain_without_optional_inputs_and_bad_audit(tmp_path):
    rows, _ = generate(200, seed=2, planted=False)
    csv = write_csv(tmp_path / "s.csv", rows)
    run_audit(AuditConfig(csv=str(csv), out=str(tmp_path / "audit"), taxonomy=str(write_taxonomy(tmp_path / "t.yaml")),
                          plots=False))
    chain = build_chain(str(tmp_path / "audit"), codec_dir=str(tmp_path / "absent"), eval_dir=None)
    status = {c["key"]: c["status"] for c in chain["columns"]}
    assert status["survival"].startswith("not run") and status["codec"].startswith("not run: no metrics.json")
    assert status["nll_acoustic"] == "not run: no --eval given"
    res = runner.invoke(app, ["report", "--audit", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "no metrics.json" in str(res.exception)
    res = runner.invoke(app, ["report", "--audit", str(tmp_path / "audit"), "--out", str(tmp_path / "o"), "--json",
                              "--no-plots"])
    assert res.exit_code == 0 and json.loads(res.output)["clips"] == 200


def test_no_clip_with_region_evidence_has_no_interval_in_the_audit_or_the_chain(tmp_path):
    """No clip names a place: the Global South share has no clips behind it, so its Wilson CI is n/a
    (null in metrics.json), never a measured [0.0%, 0.0%], and the chain does not flag that share."""
    rows, alive = generate(120, seed=5, planted=False)
    for row in rows:
        row["caption"] = "A steady beat under a warm mix."
    audit = _audit(tmp_path, rows, alive)
    metrics = json.loads((tmp_path / "audit" / "metrics.json").read_text())
    assert metrics["rollup"]["specified"] == 0 and metrics["rollup"]["global_south_any_ci"] == [None, None]
    report = (tmp_path / "audit" / "report.html").read_text()
    headline = report[report.index('id="rule-headline"'):].split("</table>")[0]
    assert "[n/a, n/a]" in headline
    assert "[0.0%, 0.0%]" not in report and "nan%" not in report
    out = tmp_path / "chain"
    res = runner.invoke(app, ["report", "--audit", audit, "--out", str(out), "--no-plots"])
    assert res.exit_code == 0, res.output
    cols = {c["key"]: c for c in json.loads((out / "chain.json").read_text())["columns"]}
    assert cols["share"]["cells"]["rollup"]["global_south"]["flag"] is False


@pytest.mark.slow
def test_chain_with_a_real_evaluation(tmp_path):
    import torch

    from cadenza.training.synthetic import make_synthetic_tokens

    torch.set_num_threads(2)
    make_synthetic_tokens(tmp_path / "tok", clips=16, shards=2)
    make_synthetic_tokens(tmp_path / "held", clips=6, shards=1, seed=3, key_prefix="h")
    held_ytids = [f"hsyn{i:08d}"[-11:] for i in range(6)]
    rows, alive = generate(300, seed=4, planted=True)
    for row, ytid, place in zip(rows, held_ytids, ["alphaland"] * 3 + ["gammaland"] * 3, strict=False):
        row["ytid"], row["caption"] = ytid, f"A song from {place}, steady beat."
        row["start_s"], row["end_s"] = 0, 10
    audit = _audit(tmp_path, rows, alive | set(held_ytids))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--shards", str(tmp_path / "tok"), "--out", str(run), "--steps", "4"])
    assert res.exit_code == 0, res.output
    ev = tmp_path / "eval"
    res = runner.invoke(app, ["evaluate", "--run", str(run), "--shards", str(tmp_path / "held"), "--out", str(ev),
                              "--audit", audit, "--num-samples", "2", "--seconds", "1.5"])
    assert res.exit_code == 0, res.output
    chain = build_chain(audit, eval_dir=str(ev))
    cols = {c["key"]: c for c in chain["columns"]}
    nll = cols["nll_acoustic"]
    assert nll["status"] == "ok" and nll["overall"] > 0
    region = nll["cells"]["region"]
    assert set(region) >= {"north_a", "south_c"} and region["north_a"]["n"] == 3 and region["south_c"]["n"] == 3
    metrics = json.loads((ev / "metrics.json").read_text())
    assert region["south_c"]["value"] == pytest.approx(metrics["by_group"]["region"]["south_c"]["nll_acoustic"])
    # the evaluation's per-group caption gain (its semantic stage, with the bootstrap CI) reaches the page
    gain = cols["caption_gain"]
    assert gain["status"] == "ok", gain["status"]
    south = metrics["by_group"]["region"]["south_c"]["caption_gain"]["semantic"]
    assert gain["cells"]["region"]["south_c"]["value"] == pytest.approx(south["gain"])
