from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from cadenza.common.ffmpeg import ensure_ffmpeg, expose_as_ffmpeg
from cadenza.common.sources import SourceError, resolve_source
from cadenza.musiccaps import load_musiccaps


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_csv_from_url_is_cached(http_dir):
    root, base = http_dir
    (root / "musiccaps-public.csv").write_text(
        "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,"
        "is_audioset_eval\r\nabcdefghijk,0,10,/m/04rlf,['a'],A song.,1,False,True\r\n"
    )
    res = load_musiccaps(f"{base}/musiccaps-public.csv")
    assert len(res.clips) == 1
    (root / "musiccaps-public.csv").unlink()  # second load must come from the cache
    assert len(load_musiccaps(f"{base}/musiccaps-public.csv").clips) == 1


def test_download_failure_says_what_to_do(http_dir):
    _, base = http_dir
    with pytest.raises(SourceError, match="download the file yourself"):
        resolve_source(f"{base}/missing.csv", what="the MusicCaps CSV")


def test_ffmpeg_shim_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin" if not shutil.which("ffmpeg") else os.environ["PATH"])
    exe = ensure_ffmpeg()
    assert os.path.basename(exe) == "ffmpeg"
    assert shutil.which("ffmpeg") == exe
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    assert "ffmpeg version" in out.stdout



def test_ffmpeg_shim_survives_threads_and_a_second_virtualenv(tmp_path):
    """Two virtualenvs share the cache, and the DirectRunner sets DoFns up in several threads of a process:
    neither may repoint or race the other's link (a rerun of the demo once died on exactly this)."""
    import imageio_ffmpeg

    first = Path(imageio_ffmpeg.get_ffmpeg_exe())
    second = tmp_path / "other-venv" / "ffmpeg-bin"  # another env's binary, at another path
    second.parent.mkdir()
    second.symlink_to(first)
    errors: list[BaseException] = []
    shims: dict[Path, set[Path]] = {first: set(), second: set()}

    def expose(real: Path) -> None:
        try:
            shims[real].add(expose_as_ffmpeg(real))
        except BaseException as exc:  # noqa: BLE001 (collected, asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=expose, args=(real,)) for _ in range(8) for real in shims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    (one,), (other,) = shims.values()
    assert one.parent != other.parent and one.readlink() == first and other.readlink() == second
    assert subprocess.run([str(other), "-version"], capture_output=True).returncode == 0
    assert not [p for p in one.parent.iterdir() if p.name != "ffmpeg"]  # no temp links left behind
