"""Bad invocations of every command: one `error:` line on stderr naming the option, exit 2, no traceback,
and nothing written that could pass for output. The CLI runs in-process (main(argv)) to stay fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadenza.cli import main
from cadenza.formats import shards, storage
from cadenza.training.synthetic import make_synthetic_tokens

HEADER = ("ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,"
          "is_audioset_eval")
ROW = "goodAAAAAAA,0,10,/m/04rlf,\"['calm']\",A calm chord.,4,False,True"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Good inputs of every kind, plus the wrong-kind and unrelated paths the table refers to by name."""
    from cadenza.training import checkpoint as ckpt_io
    from cadenza.training.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("bad-invocations")
    (root / "mc.csv").write_text(f"{HEADER}\n{ROW}\n")
    (root / "header.csv").write_text(f"{HEADER}\n")
    (root / "empty.csv").write_text("")
    (root / "a-file").write_text("not a directory\n")
    (root / "unrelated").mkdir()
    (root / "unrelated" / "notes.txt").write_text("somebody else's files\n")
    (root / "empty-dir").mkdir()
    (root / "not-json.json").write_text("{nope")
    (root / "weights-bad.json").write_text(json.dumps({"grouping": "region"}))
    import numpy as np

    np.savez(root / "not-kmeans.npz", weights=np.zeros(3))
    (root / "other.jsonl").write_text(json.dumps({"event": "somebody else's log"}) + "\n")
    (root / "audit-empty").mkdir()
    (root / "audit-empty" / "report.md").write_text("# an audit without assignments\n")
    audio = root / "audio"
    shards.write_shard(str(audio / "shards" / "audio-000000.tar"),
                       [{"__key__": "k", "flac": b"x", "json": "{}"}], {"kind": "audio"})
    storage.write_json_atomic(str(audio / "manifest.json"), {"kind": "audio"})
    make_synthetic_tokens(root / "tokens", clips=8, shards=2)
    run = root / "run"
    train(TrainConfig.preset("tiny", str(root / "tokens"), str(run), steps=1, batch_size=2, progress=False))
    assert ckpt_io.latest_checkpoint(run) is not None
    return {"ROOT": str(root), "CSV": str(root / "mc.csv"), "HEADER_CSV": str(root / "header.csv"),
            "EMPTY_CSV": str(root / "empty.csv"), "FILE": str(root / "a-file"), "UNRELATED": str(root / "unrelated"),
            "EMPTY_DIR": str(root / "empty-dir"), "NOT_JSON": str(root / "not-json.json"),
            "BAD_WEIGHTS": str(root / "weights-bad.json"), "AUDIO": str(audio), "TOKENS": str(root / "tokens"),
            "RUN": str(run), "AUDIT_EMPTY": str(root / "audit-empty"), "MISSING": str(root / "missing"),
            "NEW": str(root / "new-out"), "NOT_KMEANS": str(root / "not-kmeans.npz"),
            "OTHER_JSONL": str(root / "other.jsonl")}


T = ["train", "--shards", "TOKENS", "--out", "NEW"]
S = ["sample", "--run", "RUN", "--prompt", "a calm chord", "--out", "NEW"]
E = ["evaluate", "--run", "RUN", "--shards", "TOKENS", "--out", "NEW"]
A = ["audit", "--csv", "CSV", "--out", "NEW", "--ontology", "MISSING"]
A_OK = ["audit", "--csv", "CSV", "--out", "NEW"]
K = ["tokenize", "--shards", "AUDIO", "--out", "NEW"]
I = ["ingest", "--csv", "CSV", "--out", "NEW", "--ontology", "none"]  # noqa: E741


def _set(args: list[str], option: str, value: str) -> list[str]:
    """args with option's value replaced (or the option added)."""
    out = list(args)
    if option in out:
        out[out.index(option) + 1] = value
        return out
    return [*out, option, value]


# (argv, what the one stderr line must contain)
CASES: list[tuple[list[str], str]] = [
    # train
    (_set(T, "--shards", "MISSING"), "--shards: no such file or directory"),
    (_set(T, "--shards", "FILE"), "--shards"),
    (_set(T, "--shards", "AUDIO"), "is an audio dir"),
    (_set(T, "--shards", "EMPTY_DIR"), "no complete tokens shards"),
    (_set(T, "--shards", "RUN"), "is a run dir"),
    ([*T, "--config", "huge"], "--config: expected a preset"),
    ([*T, "--config", "EMPTY_DIR"], "--config"),
    ([*T, "--config", "NOT_JSON"], "--config"),
    ([*T, "--steps", "0"], "--steps: must be at least 1"),
    ([*T, "--steps", "-5"], "--steps"),
    ([*T, "--steps", "many"], "--steps"),
    ([*T, "--batch-size", "0"], "--batch-size: must be at least 1"),
    ([*T, "--num-workers", "-1"], "--num-workers"),
    ([*T, "--seed", "-1"], "--seed"),
    ([*T, "--weights", "MISSING"], "--weights"),
    ([*T, "--weights", "BAD_WEIGHTS"], "--weights: not an audit weights file"),
    ([*T, "--val-shards", "AUDIO"], "--val-shards"),
    (_set(T, "--out", "FILE"), "--out: "),
    (_set(T, "--out", "RUN"), "--resume"),
    (_set(T, "--out", "UNRELATED"), "--force"),
    ([*_set(T, "--out", "RUN"), "--resume", "--force"], "not both"),
    (["train", "--shards", "TOKENS"], "--out"),
    ([*T, "--stpes", "3"], "--stpes"),
    # sample
    (_set(S, "--run", "MISSING"), "--run"),
    (_set(S, "--run", "TOKENS"), "is a token dir"),
    (_set(S, "--run", "EMPTY_DIR"), "no checkpoint"),
    ([*S, "--seconds", "0"], "--seconds: must be greater than 0"),
    ([*S, "--seconds", "-3"], "--seconds"),
    ([*S, "--seconds", "nan"], "--seconds"),
    ([*S, "--temperature", "-1"], "--temperature: must be at least 0"),
    ([*S, "--top-k", "-1"], "--top-k"),
    ([*S, "--top-p", "0"], "--top-p"),
    ([*S, "--top-p", "1.5"], "--top-p"),
    ([*S, "--cfg-scale", "-2"], "--cfg-scale"),
    ([*S, "--seed", "-4"], "--seed"),
    (_set(S, "--prompt", ""), "--prompt"),
    (_set(S, "--device", "gpu"), "--device: expected one of auto, cpu, cuda"),
    (_set(S, "--out", "FILE"), "--out"),
    (_set(S, "--out", "UNRELATED"), "--force"),
    ([*S, "--codec-weights", "MISSING"], "--codec-weights"),
    (["sample", "--run", "RUN", "--out", "NEW"], "--prompt"),
    # evaluate
    ([*E, "--num-samples", "0"], "--num-samples: must be at least 1"),
    (_set(E, "--run", "MISSING"), "--run"),
    (_set(E, "--run", "EMPTY_DIR"), "no checkpoint"),
    (_set(E, "--shards", "AUDIO"), "is an audio dir"),
    (_set(E, "--shards", "MISSING"), "--shards"),
    ([*E, "--audit", "MISSING"], "--audit"),
    ([*E, "--audit", "AUDIT_EMPTY"], "assignments.jsonl"),
    ([*E, "--seconds", "0"], "--seconds"),
    (_set(E, "--out", "FILE"), "--out"),
    (_set(E, "--device", "tpu"), "--device: expected one of auto, cpu, cuda"),
    (_set(E, "--out", "UNRELATED"), "--force"),
    # audit
    (_set(A_OK, "--csv", "HEADER_CSV"), "no data rows"),
    (_set(A_OK, "--csv", "EMPTY_CSV"), "is empty"),
    (_set(A_OK, "--csv", "EMPTY_DIR"), "is a directory"),
    (_set(A_OK, "--csv", "MISSING"), "--csv: no such file"),
    (_set(A_OK, "--out", "FILE"), "--out"),
    (_set(A_OK, "--out", "UNRELATED"), "--force"),
    (A, "--ontology"),
    ([*A_OK, "--ingest", "TOKENS"], "is a token dir"),
    ([*A_OK, "--ingest", "MISSING"], "--ingest"),
    ([*A_OK, "--ingest", "AUDIO", "--available", "CSV"], "not both"),
    ([*A_OK, "--available", "MISSING"], "--available"),
    ([*A_OK, "--weights-out", "ROOT/w.txt"], "--weights-out"),
    ([*A_OK, "--weights-out", "EMPTY_DIR"], "--weights-out"),
    ([*A_OK, "--cap", "0.5"], "--cap"),
    ([*A_OK, "--alpha", "0.9"], "--alpha"),
    ([*A_OK, "--group-by", "planet"], "--group-by"),
    ([*A_OK, "--taxonomy", "MISSING"], "--taxonomy"),
    # tokenize
    (_set(K, "--shards", "TOKENS"), "is a token dir"),
    (_set(K, "--shards", "MISSING"), "--shards"),
    (_set(K, "--shards", "EMPTY_DIR"), "no complete audio shards"),
    (["tokenize", "--out", "NEW"], "--shards and --out are required"),
    (_set(K, "--device", "tpu"), "--device: expected one of auto, cpu, cuda"),
    (_set(K, "--codec-batch", "-1"), "--codec-batch: must be at least 0"),
    (_set(T, "--device", "gpu"), "--device: expected one of auto, cpu, cuda"),
    (_set(T, "--precision", "fp16"), "--precision: expected one of auto, fp32, bf16"),
    ([*K, "--acoustic", "encodec_48khz"], "--acoustic: expected one of"),
    ([*K, "--bandwidth", "0"], "--bandwidth"),
    ([*K, "--clusters", "1"], "--clusters"),
    ([*K, "--text", "bert"], "--text"),
    ([*K, "--batch-size", "0"], "--batch-size"),
    ([*K, "--optimize", "fast"], "--optimize"),
    ([*K, "--semantic", "wav2vec"], "--semantic"),
    ([*K, "--kmeans", "MISSING"], "--kmeans"),
    ([*K, "--torch-threads", "0"], "--torch-threads"),
    (_set(K, "--out", "FILE"), "--out"),
    (_set(K, "--out", "AUDIO"), "is an audio dir"),
    (_set(K, "--out", "UNRELATED"), "--force"),
    ([*K, "--direct_num_wrokers", "2"], "did you mean --direct_num_workers"),
    (["tokenize", "fit-kmeans", "--shards", "AUDIO", "--out", "ROOT/km.npz", "--clusters", "0"], "--clusters"),
    (["tokenize", "fit-kmeans", "--shards", "AUDIO", "--out", "EMPTY_DIR"], "--out"),
    (["tokenize", "fit-kmeans", "--shards", "TOKENS", "--out", "ROOT/km.npz"], "is a token dir"),
    (["tokenize", "fit-kmeans", "--shards", "AUDIO", "--out", "NOT_KMEANS"], "--force"),
    # ingest
    (_set(I, "--csv", "HEADER_CSV"), "no data rows"),
    (_set(I, "--csv", "EMPTY_DIR"), "is a directory"),
    (_set(I, "--csv", "MISSING"), "--csv"),
    ([*I, "--limit", "0"], "--limit"),
    ([*I, "--limt", "1"], "did you mean --limit"),
    ([*I, "--shard-size", "0"], "--shard-size"),
    ([*I, "--sample-rate", "10"], "--sample-rate"),
    ([*I, "--source-url-template", "http://127.0.0.1:1/static.m4a"], "{ytid}"),
    ([*I, "--max-attempts", "0"], "--max-attempts"),
    ([*I, "--max-failure-rate", "2"], "--max-failure-rate"),
    ([*I, "--sleep-requests", "-1"], "--sleep-requests"),
    ([*I, "--cookies", "MISSING"], "--cookies"),
    (_set(I, "--ontology", "MISSING"), "--ontology"),
    (_set(I, "--out", "FILE"), "--out"),
    (_set(I, "--out", "TOKENS"), "is a token dir"),
    (_set(I, "--out", "UNRELATED"), "--force"),
    ([*I, "--direct_num_workers", "lots"], "direct_num_workers"),
    ([*I, "stray"], "stray"),
    # metadata
    (["musiccaps", "validate", "EMPTY_DIR"], "is a directory"),
    (["musiccaps", "validate", "MISSING"], "no such file"),
    (["musiccaps", "validate", "CSV", "--rejects", "OTHER_JSONL"], "--force"),
    (["musiccaps", "validate", "CSV", "--rejects", "NOT_JSON"], "--rejects: expected a .jsonl file"),
    # demo
    (["demo", "--out", "UNRELATED"], "--force"),
    (["demo", "--out", "FILE"], "--out"),
    (["demo", "--clips", "0"], "--clips"),
    (["frobnicate"], "frobnicate"),
]


def _resolve(argv: list[str], inputs: dict[str, str]) -> list[str]:
    out = []
    for a in argv:
        for name in sorted(inputs, key=len, reverse=True):
            if a == name or a.startswith(f"{name}/"):
                a = inputs[name] + a[len(name):]
                break
        out.append(a)
    return out


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_the_table_covers_every_command_and_at_least_60_cases():
    assert len(CASES) >= 60
    assert {argv[0] for argv, _ in CASES} >= {"train", "sample", "evaluate", "audit", "tokenize", "ingest"}


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_invocation_is_one_line_and_exit_2(inputs, capsys, argv, expected):
    root = Path(inputs["ROOT"])
    before = _listing(root)
    args = _resolve(argv, inputs)
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert exited.value.code == 2, (args, captured.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, captured.err)
    assert "Traceback" not in captured.err + captured.out
    assert _resolve([expected], inputs)[0] in lines[0], (args, lines[0])
    # nothing written anywhere: no output dir created, no file in any input or output dir
    assert _listing(root) == before, args
