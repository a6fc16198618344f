"""`cadenza report`: the chain per culture from real audit output, a codec evaluation in its documented
format, and (slow) a real trained-and-evaluated run; missing links show as "not run"."""

from __future__ import annotations

import json

import pytest
from audit_synth import generate, write_csv, write_taxonomy
from typer.testing import CliRunner

from cadenza.audit import AuditConfig, run_audit
from cadenza.audit.chain_report import build_chain, measure
from cadenza.cli import app

runner = CliRunner()


def _audit(tmp_path, rows, alive) -> str:
    csv = write_csv(tmp_path / "s.csv", rows)
    available = tmp_path / "available.txt"
    available.write_text("\n".join(sorted(alive)) + "\n")
    out = tmp_path / "audit"
    run_audit(AuditConfig(csv=str(csv), out=str(out), taxonomy=str(write_taxonomy(tmp_path / "t.yaml")),
                          available=str(available), plots=False))
    return str(out)


def _codec_metrics(path, groups: dict[str, float]) -> None:
    """A codec evaluation's metrics.json as its contract describes it: overall and by_group with CIs and flags."""
    def m(mean: float, n: int = 40) -> dict:
        return {"mean": mean, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "n": n}

    by_region = {g: {"log_mel_l1": m(v), "si_snr": m(10 - v), "flag": v > 1.2} for g, v in groups.items()}
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps({
        "overall": {"log_mel_l1": m(1.0, 200), "si_snr": m(9.0, 200)},
        "by_group": {"region": by_region, "rollup": {"global_north": {"log_mel_l1": m(0.9)}}},
    }))


def test_measure_reads_numbers_and_intervals():
    assert measure(2.5) == {"value": 2.5, "ci": None, "n": None, "flag": False}
    cell = measure({"mean": 1.0, "ci_low": 0.8, "ci_high": 1.2, "n": 9, "flag": True})
    assert cell == {"value": 1.0, "ci": [0.8, 1.2], "n": 9, "flag": True}
    for bad in (None, "x", {"mean": "x"}, float("nan"), True, {"ci_low": 1}):
        assert measure(bad) is None, bad


def test_chain_from_audit_and_codec_eval_with_missing_links(tmp_path):
    rows, alive = generate(600, seed=1, planted=True)
    audit = _audit(tmp_path, rows, alive)
    _codec_metrics(tmp_path / "codec", {"north_a": 0.9, "north_b": 1.0, "south_c": 1.3, "south_d": 1.0})
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
    codec = cols["codec_log_mel_l1"]["cells"]["region"]
    assert codec["south_c"]["flag"] is True and codec["north_a"]["flag"] is False  # the stage's own flag
    assert codec["north_a"]["ci"] == [0.85, 0.9 + 0.05] and cols["codec_si_snr"]["higher_is_better"] is True
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
