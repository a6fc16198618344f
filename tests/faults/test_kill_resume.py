"""kill -9 at seeded points of real `cadenza ingest | tokenize | train` processes, then resume.

Each kill must land mid-run (the process was still running, died of SIGKILL, and had written less than an
uninterrupted run), and each resumed output must equal an uninterrupted run's: byte-identical audio shards
(SOURCE_DATE_EPOCH fixes fetched_at), identical tokens, training weights equal within float tolerance, and
every row present exactly once.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from faultkit import (
    SEEDS,
    Kill,
    cli_env,
    count_complete,
    ended_first,
    run_and_kill,
    run_cli,
    token_samples,
    until_mid_run,
)
from ingest_testkit import media_dir, read_shard, write_csv  # noqa: F401 (media_dir is a fixture)
from safetensors.torch import load_file

from cadenza.formats import shards, storage
from cadenza.testing.mediaserver import MediaServer, synth_audio
from cadenza.training.synthetic import make_synthetic_tokens

pytestmark = pytest.mark.slow
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def assert_killed(kill: Kill) -> None:
    """The SIGKILL reached the command itself while it ran (not a process that had already exited)."""
    assert kill.killed and kill.returncode == -signal.SIGKILL, kill

# ---------------------------------------------------------------- ingest

INGEST_ROWS = [(y, s, s + 4) for s in (0, 3, 6) for y in ("goodAAAAAAA", "goodBBBBBBB", "goodCCCCCCC")]


@pytest.fixture(scope="module")
def ingest_reference(media_dir, tmp_path_factory):  # noqa: F811
    """One server for the whole module (its port is in every sample's source_url) and a clean run."""
    root = tmp_path_factory.mktemp("ingest-kill")
    csv = write_csv(root / "mc.csv", INGEST_ROWS)
    with MediaServer(media_dir, latency_s=0.1) as srv:
        common = ["ingest", "--csv", str(csv), "--source-url-template", srv.url_template("m4a"), "--shard-size", "1",
                  "--ontology", "none", "--max-concurrent-fetches", "1", "--no-progress"]
        clean = root / "clean"
        done = run_cli([*common, "--out", str(clean), "--direct_running_mode=in_memory"], env=cli_env(**EPOCH))
        assert done.returncode == 0, done.stderr[-3000:]
        yield common, clean, root


@pytest.mark.parametrize("seed", SEEDS)
def test_ingest_killed_and_resumed_equals_an_uninterrupted_run(ingest_reference, seed):
    common, clean, root = ingest_reference
    out = root / f"killed-{seed}"
    env = cli_env(**EPOCH)
    kill = run_and_kill([*common, "--out", str(out)], lambda: count_complete(out / "shards"), len(INGEST_ROWS),
                        seed, env=env)
    assert_killed(kill)
    assert kill.progress_at_kill < len(INGEST_ROWS) and not (out / "manifest.json").exists(), kill
    resumed = run_cli([*common, "--out", str(out), "--json", "--direct_running_mode=in_memory"], env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads(resumed.stdout[resumed.stdout.index("{"):])
    assert manifest["run"]["shards_written"] == len(INGEST_ROWS) - kill.progress_at_kill
    assert manifest["rows_in"] == manifest["clips_written"] == len(INGEST_ROWS)

    names = sorted(p.name for p in (clean / "shards").iterdir())
    assert names == sorted(p.name for p in (out / "shards").iterdir()), "leftovers of the killed writes"
    for name in names:
        assert (out / "shards" / name).read_bytes() == (clean / "shards" / name).read_bytes(), name
    keys = [k for t in sorted((out / "shards").glob("*.tar")) for k in read_shard(t)]
    assert sorted(keys) == sorted(f"{y}_{s * 1000:08d}_{e * 1000:08d}" for y, s, e in INGEST_ROWS)


# ---------------------------------------------------------------- tokenize

TOKEN_SHARDS = 3


@pytest.fixture(scope="module")
def tokenize_reference(tmp_path_factory):
    """Three audio shards of two 1.5 s clips, and their tokens from an uninterrupted run."""
    import io

    import soundfile as sf

    root = tmp_path_factory.mktemp("tokenize-kill")
    audio = root / "audio"
    for i in range(TOKEN_SHARDS):
        samples = []
        for j in range(2):
            key = f"clip{i}{j}xxxxx_00000000_00001500"
            y = synth_audio(1.5, 32_000, seed=10 * i + j, channels=1)[0]
            buf = io.BytesIO()
            sf.write(buf, y, 32_000, format="FLAC", subtype="PCM_16")
            meta = {"ytid": key[:11], "key": key, "row": 2 * i + j + 1, "caption": f"chord {i}{j}",
                    "sample_rate": 32_000, "num_samples": int(y.size), "duration_s": y.size / 32_000}
            samples.append({"__key__": key, "flac": buf.getvalue(), "txt": meta["caption"], "json": json.dumps(meta)})
        shards.write_shard(str(audio / "shards" / shards.shard_name("audio", i)), samples, {"samples": 2})
    storage.write_json_atomic(str(audio / "manifest.json"), {"kind": "audio", "clips_written": 2 * TOKEN_SHARDS})
    args = ["tokenize", "--shards", str(audio), "--codec-random-init", "--codec-small", "--clusters", "8",
            "--text", "none", "--no-progress", "--batch-size", "2", "--optimize", "eager"]
    clean = root / "clean"
    done = run_cli([*args, "--out", str(clean)], env=cli_env(OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    return args, clean, root


def _tokenize_progress(out: Path) -> int:
    """0-1: k-means fitted, 2: codec saved, then one per complete token shard."""
    return (int((out / "kmeans.npz").exists()) + int((out / "codec" / "cadenza_codec.json").exists())
            + count_complete(out / "shards"))


@pytest.mark.parametrize("seed", SEEDS)
def test_tokenize_killed_and_resumed_gives_the_same_tokens(tokenize_reference, seed):
    args, clean, root = tokenize_reference
    env = cli_env(OMP_NUM_THREADS="1")

    # seeded points from the start to the codec being saved, then a delay: token shards are written
    # together once Beam's GroupByKey ends, so a point past the first of them would be past them all
    def attempt(n: int, share: float) -> tuple[Kill, Path, bool]:
        out = root / f"killed-{seed}-{n}"
        kill = run_and_kill([*args, "--out", str(out)], lambda: _tokenize_progress(out), 4, seed, env=env,
                            max_delay_s=share * 1.0)
        complete = count_complete(out / "shards")
        return kill, out, ended_first(kill, out / "manifest.json") or complete == TOKEN_SHARDS

    kill, out = until_mid_run(attempt)
    assert_killed(kill)
    assert not (out / "manifest.json").exists() and count_complete(out / "shards") < TOKEN_SHARDS, kill
    resumed = run_cli([*args, "--out", str(out)], env=env)
    assert resumed.returncode == 0, (kill, resumed.stderr[-3000:])

    want, got = token_samples(clean), token_samples(out)
    assert sorted(got) == sorted(want) and len(got) == 2 * TOKEN_SHARDS, kill  # none lost, none twice
    for key, sample in want.items():
        assert got[key].keys() == sample.keys(), key
        for ext, value in sample.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == got[key][ext].dtype and np.array_equal(value, got[key][ext]), (key, ext, kill)
            else:
                assert got[key][ext] == value, (key, ext, kill)
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(p.name for p in (clean / "shards").iterdir())
    for name in sorted(p.name for p in (clean / "shards").glob("*.tar")):
        assert (out / "shards" / name).read_bytes() == (clean / "shards" / name).read_bytes(), (name, kill)
    manifest = json.loads((out / "manifest.json").read_text())
    fingerprints = {k: (v or {}).get("fingerprint") for k, v in manifest["tokenizers"].items()}
    clean_manifest = json.loads((clean / "manifest.json").read_text())
    assert fingerprints == {k: (v or {}).get("fingerprint") for k, v in clean_manifest["tokenizers"].items()}


# ---------------------------------------------------------------- train

TRAIN_CFG = dict(model="tiny", steps=12, schedule_steps=12, batch_size=4, grad_accum=2, warmup_steps=3, log_every=2,
                 ckpt_every=3, shuffle_buffer=16, crop_seconds=2.0, num_workers=0, progress=False)


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-kill")
    make_synthetic_tokens(root / "tok", clips=20, shards=3)
    (root / "cfg.json").write_text(json.dumps(TRAIN_CFG))
    args = ["train", "--shards", str(root / "tok"), "--config", str(root / "cfg.json")]
    done = run_cli([*args, "--out", str(root / "clean")], env=cli_env(OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    return args, root / "clean", root


def _weights(run: Path) -> dict[str, torch.Tensor]:
    latest = json.loads((run / "checkpoints/latest.json").read_text())["path"]
    return load_file(run / "checkpoints" / latest / "model.safetensors")


def _curve(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [(r["step"], round(r["loss"], 5)) for r in rows if "loss" in r]


def _logged_lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("seed", SEEDS)
def test_train_killed_and_resumed_reaches_the_same_weights(train_reference, seed):
    args, clean, root = train_reference
    env = cli_env(OMP_NUM_THREADS="1")

    def attempt(n: int, share: float) -> tuple[Kill, Path, bool]:
        out = root / f"killed-{seed}-{n}"
        kill = run_and_kill([*args, "--out", str(out)], lambda: _logged_lines(out),
                            TRAIN_CFG["steps"] // TRAIN_CFG["log_every"], seed, env=env, max_delay_s=share * 0.4)
        return kill, out, ended_first(kill, out / "train_summary.json") or _logged_lines(out) >= len(_curve(clean))

    kill, out = until_mid_run(attempt)
    assert_killed(kill)
    assert _logged_lines(out) < len(_curve(clean)), kill  # fewer steps logged than the uninterrupted run
    resumed = run_cli([*args, "--out", str(out), "--resume"], env=env)
    assert resumed.returncode == 0, (kill, resumed.stderr[-3000:])

    a, b = _weights(clean), _weights(out)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=f"{k} after {kill}")
    assert _curve(out) == _curve(clean), kill  # every step logged once: nothing lost, nothing repeated
    assert not list((out / "checkpoints").glob(".tmp-*")), "a killed checkpoint write was left behind"
