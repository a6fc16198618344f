"""Shared fixtures. Real data from ../shared/data is used when present; tests skip cleanly without it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Only loopback is contacted: every Python process of the run refuses (and logs) any other address.
GUARD_DIR = Path(__file__).resolve().parent / "loopback_guard"
sys.path.insert(0, str(GUARD_DIR))
import loopback_guard  # noqa: E402

SOCKET_LOG = os.path.join(tempfile.gettempdir(), f"cadenza-test-sockets-{os.getpid()}.log")
os.environ[loopback_guard.LOG_ENV] = SOCKET_LOG
os.environ["PYTHONPATH"] = os.pathsep.join([str(GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
loopback_guard.install()

# Under pytest-xdist (`make test` runs two workers on two cores), each worker and every process it starts
# keeps to one torch/OpenMP thread, so that the two workers do not fight over the cores.
UNDER_XDIST = "PYTEST_XDIST_WORKER" in os.environ
if UNDER_XDIST:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MUSICCAPS_CSV = SHARED_DATA / "musiccaps" / "musiccaps-public.csv"
ONTOLOGY_JSON = SHARED_DATA / "audioset" / "ontology.json"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker():
    if UNDER_XDIST:
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _loopback_only():
    start = os.path.getsize(SOCKET_LOG) if os.path.exists(SOCKET_LOG) else 0
    yield
    violations, _ = loopback_guard.read_violations(SOCKET_LOG, start)
    if violations:
        pytest.fail(f"the test opened sockets to non-loopback addresses: {violations}", pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # downloads and the ffmpeg shim go to a per-session temp cache, never the user's home
    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path_factory.getbasetemp() / "cadenza-cache"))


@pytest.fixture(scope="session")
def musiccaps_csv() -> Path:
    if not MUSICCAPS_CSV.is_file():
        pytest.skip(f"real MusicCaps CSV not present at {MUSICCAPS_CSV}")
    return MUSICCAPS_CSV


@pytest.fixture(scope="session")
def ontology_json() -> Path:
    if not ONTOLOGY_JSON.is_file():
        pytest.skip(f"AudioSet ontology not present at {ONTOLOGY_JSON}")
    return ONTOLOGY_JSON
