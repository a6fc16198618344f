"""`cadenza ingest` and `cadenza tokenize` on real distributed Beam runners give the DirectRunner's bytes.

- Dask: Beam's DaskRunner on a `distributed.LocalCluster` (a scheduler and two worker processes over
  loopback TCP), chosen with the plain `--runner DaskRunner`;
- Portable: Beam's PortableRunner with an EXTERNAL environment, SDK workers started by a
  `worker_pool_main` process on loopback (how Flink and Spark run Python workers on Kubernetes).

Every run goes through the CLI with the runner's options passed on to Beam, and must give byte-identical
shards, stats and failure records to the DirectRunner's run of the same inputs.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ingest_testkit import RETRY_OK, media_dir, write_csv  # noqa: F401 (media_dir is a fixture)
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.formats import shards, storage
from cadenza.testing.mediaserver import MediaServer, synth_audio

pytestmark = pytest.mark.slow
EPOCH = "1700000000"  # SOURCE_DATE_EPOCH: fixes the fetch time the audio samples carry
# three shards of two rows: clips, a 404 (a failure record), a 429 then 200 (a retry), an invalid row
INGEST_ROWS = [("goodAAAAAAA", 0, 4), ("f404xxxxxxx", 0, 4), ("goodBBBBBBB", 3, 7), (RETRY_OK, 1, 5),
               ("goodCCCCCCC", 6, 10), ("not-an-id", 0, 4), ("goodAAAAAAA", 5, 9)]
# per shard: clip seeds; None is a clip whose flac is corrupt (a decode failure record)
TOKEN_SHARDS = [[1, None, 2], [3, 4], [5, 6, 7]]
COMPARED = ("shards", "stats", "samples", "failures")


def _worker_env(tmp: Path) -> dict[str, str]:
    # workers are processes of their own: same cache rule as the tests (never the user's home), one thread
    return {"CADENZA_CACHE": str(tmp / "worker-cache"), "OMP_NUM_THREADS": "1", "SOURCE_DATE_EPOCH": EPOCH}


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory):
    """A LocalCluster: scheduler and 2 single-threaded worker processes on 127.0.0.1."""
    from distributed import LocalCluster

    env = _worker_env(tmp_path_factory.mktemp("dask"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env=env) as cluster:
        yield cluster.scheduler_address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    """Beam's SDK worker pool in a process of its own; each job's SDK workers are its subprocesses."""
    tmp = tmp_path_factory.mktemp("pool")
    port = _free_port()
    # the pool starts each SDK worker as `python -c ...`: the first `python` on PATH must be this environment's
    env = {**os.environ, **_worker_env(tmp),
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    log = (tmp / "pool.log").open("wb")
    pool = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert pool.poll() is None, (tmp / "pool.log").read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "worker pool did not listen within 60 s"
                time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        os.killpg(pool.pid, signal.SIGTERM)  # the pool and the SDK workers it started (its session)
        try:
            pool.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait()
        log.close()


def portable_args(endpoint: str) -> list[str]:
    return ["--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "EXTERNAL",
            "--environment_config", endpoint]


def dask_args(address: str) -> list[str]:
    return ["--runner", "DaskRunner", "--dask_client_address", address]


def cli(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)


def assert_same_files(got: Path, want: Path, subdirs=COMPARED) -> None:
    for sub in subdirs:
        names = sorted(p.name for p in (want / sub).iterdir())
        assert names, f"{want / sub} is empty"
        assert sorted(p.name for p in (got / sub).iterdir()) == names, sub
        for name in names:
            assert (got / sub / name).read_bytes() == (want / sub / name).read_bytes(), f"{sub}/{name}"


# ---------------------------------------------------------------- ingest


@pytest.fixture(scope="module")
def ingest_inputs(media_dir, tmp_path_factory):  # noqa: F811
    """The CSV and one media server for every run (its URL is in the samples, so it must not change)."""
    root = tmp_path_factory.mktemp("ingest-runners")
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404", RETRY_OK: "429-then-200"}) as srv:
        yield write_csv(root / "mc.csv", INGEST_ROWS), srv, root


def ingest(inputs, out: Path, beam: list[str]) -> None:
    csv, srv, _ = inputs
    srv.reset_counts()  # the 429 comes first in every run
    cli(["ingest", "--csv", str(csv), "--out", str(out), "--source-url-template", srv.url_template("m4a"),
         "--shard-size", "2", "--max-attempts", "2", "--ontology", "none", "--no-progress", *beam])


@pytest.fixture(scope="module")
def ingest_reference(ingest_inputs):
    out = ingest_inputs[2] / "direct"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
        ingest(ingest_inputs, out, ["--direct_running_mode", "in_memory"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clips_written"] == 5 and manifest["clips_failed"] == 1 and manifest["rows_rejected"] == 1
    assert len(manifest["shards"]) == 3
    return out


@pytest.mark.parametrize("runner", ["dask", "portable"])
def test_ingest_on_a_distributed_runner_gives_the_direct_runners_shards(
    runner, ingest_reference, ingest_inputs, request, monkeypatch
):
    beam = dask_args(request.getfixturevalue("dask_scheduler")) if runner == "dask" else portable_args(
        request.getfixturevalue("worker_pool"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    out = ingest_inputs[2] / runner
    ingest(ingest_inputs, out, beam)
    assert_same_files(out, ingest_reference)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failures_by_category"] == json.loads((ingest_reference / "manifest.json").read_text())[
        "failures_by_category"]


# ---------------------------------------------------------------- tokenize


def _flac(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, synth_audio(1.5, 32_000, seed=seed, channels=1)[0], 32_000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def token_inputs(tmp_path_factory):
    """Three audio shards (3, 2 and 3 clips of 1.5 s, one corrupt), and the DirectRunner's tokens."""
    root = tmp_path_factory.mktemp("tokenize-runners")
    audio, row = root / "audio", 0
    for i, seeds in enumerate(TOKEN_SHARDS):
        samples = []
        for seed in seeds:
            row += 1
            key = f"clip{row:02d}xxxxx_00000000_00001500"
            meta = {"ytid": key[:11], "key": key, "row": row, "caption": f"a chord, clip {row}",
                    "aspect_list": ["chord", "synth"], "sample_rate": 32_000, "num_samples": 48_000,
                    "duration_s": 1.5}
            flac = b"not a flac file" if seed is None else _flac(seed)
            samples.append({"__key__": key, "flac": flac, "txt": meta["caption"], "json": json.dumps(meta)})
        shards.write_shard(str(audio / "shards" / shards.shard_name("audio", i)), samples, {"samples": len(seeds)})
    storage.write_json_atomic(str(audio / "manifest.json"), {"kind": "audio", "clips_written": row})
    # batch size 2: shards of 3 clips end in a chunk of 1 (what BatchElements emitted from finish_bundle)
    args = ["tokenize", "--shards", str(audio), "--codec-random-init", "--codec-small", "--clusters", "8",
            "--no-progress", "--batch-size", "2"]
    reference = root / "direct"
    cli([*args, "--out", str(reference), "--runner", "DirectRunner"])
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["clips_written"] == 7 and manifest["failures_by_category"] == {"decode": 1}
    return args, reference, root


def token_arrays(out: Path) -> dict[tuple[str, str], np.ndarray]:
    return {(s["__key__"], ext): np.load(io.BytesIO(v), allow_pickle=False)
            for tar in shards.list_shards(str(out / "shards")) for s in shards.iter_tar_samples(tar)
            for ext, v in s.items() if ext.endswith(".npy")}


@pytest.mark.parametrize("runner", ["dask", "portable"])
def test_tokenize_on_a_distributed_runner_gives_the_direct_runners_tokens(runner, token_inputs, request):
    args, reference, root = token_inputs
    beam = dask_args(request.getfixturevalue("dask_scheduler")) if runner == "dask" else portable_args(
        request.getfixturevalue("worker_pool"))
    out = root / runner
    # the reference's k-means and codec, as a resumed run finds them: what is compared is the Beam pass
    out.mkdir()
    shutil.copy(reference / "kmeans.npz", out / "kmeans.npz")
    shutil.copytree(reference / "codec", out / "codec")
    cli([*args, "--out", str(out), *beam])

    want, got = token_arrays(reference), token_arrays(out)
    assert len(want) == 7 * 4 and sorted(got) == sorted(want)  # semantic, acoustic, text, aspects per clip
    for key, arr in want.items():
        assert got[key].dtype == arr.dtype and np.array_equal(got[key], arr), key
    assert_same_files(out, reference, ("shards", "stats", "failures"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clips_written"] == 7 and manifest["failures_by_category"] == {"decode": 1}
