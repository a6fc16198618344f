"""A full disk under the output: ingest and tokenize stop with a clear error, leave only whole shards
(every visible .tar has its .stats.json; no temp files), and the same command finishes after space is freed.

The small disk is a tmpfs mounted for the test (needs root, as in CI containers); the test skips,
saying why, where mounting is not allowed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from faultkit import cli_env, run_cli, token_samples
from ingest_testkit import media_dir, read_all, write_csv  # noqa: F401 (media_dir is a fixture)

from cadenza.formats import shards
from cadenza.testing.mediaserver import MediaServer

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """A mount point whose size the test sets with resize(bytes)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()

    def mount(size: int, remount: bool = False) -> None:
        opts = f"{'remount,' if remount else ''}size={size}"
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a size-limited tmpfs here ({res.stderr.strip() or res.returncode})")

    mount(400 * 1024)
    yield mnt, lambda size: mount(size, remount=True)
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def assert_only_whole_shards(shard_dir: Path) -> int:
    """No temp files; every shard with its marker holds what the marker says. A .tar whose marker could
    not be written is allowed, but is not complete (it is redone on resume). Returns the complete count."""
    names = sorted(p.name for p in shard_dir.iterdir())
    assert all(n.endswith(".tar") for n in names), names  # stats and tables live beside the shard dir
    beside = [p.name for sub in ("stats", "samples") if (shard_dir.parent / sub).is_dir()
              for p in (shard_dir.parent / sub).iterdir()]
    assert not [n for n in beside if ".tmp-" in n], beside
    complete = shards.list_shards(str(shard_dir))
    marked = [n for n in names if n.removesuffix(".tar") + ".stats.json" in beside]
    assert complete == [str(shard_dir / n) for n in marked]
    for t in complete:
        stats = json.loads(Path(shards.stats_path(t)).read_text())
        keys = [s["__key__"] for s in shards.iter_tar_samples(t)]
        assert len(keys) == stats.get("samples", stats.get("clips_written")), t
    return len(complete)


def test_ingest_on_a_full_disk_fails_cleanly_then_resumes(media_dir, small_disk, tmp_path):  # noqa: F811
    mnt, resize = small_disk
    rows = [(y, s, s + 4) for s in (0, 4) for y in ("goodAAAAAAA", "goodBBBBBBB", "goodCCCCCCC")]
    csv = write_csv(tmp_path / "mc.csv", rows)
    env = cli_env(SOURCE_DATE_EPOCH="1700000000")
    with MediaServer(media_dir) as srv:
        args = ["ingest", "--csv", str(csv), "--source-url-template", srv.url_template("m4a"), "--shard-size", "1",
                "--ontology", "none", "--no-progress", "--direct_running_mode=in_memory"]
        full = run_cli([*args, "--out", str(mnt / "out")], env=env)
        assert full.returncode == 3, full.stderr[-3000:]
        assert "error: no space left on device" in full.stderr and "run the same command again" in full.stderr
        whole = assert_only_whole_shards(mnt / "out" / "shards")
        assert whole < len(rows)

        resize(32 * 1024 * 1024)  # space freed
        resumed = run_cli([*args, "--out", str(mnt / "out"), "--json"], env=env)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        clean = run_cli([*args, "--out", str(tmp_path / "clean")], env=env)
        assert clean.returncode == 0, clean.stderr[-3000:]
    manifest = json.loads(resumed.stdout[resumed.stdout.index("{"):])
    assert manifest["run"]["shards_written"] == len(rows) - whole
    assert manifest["rows_in"] == manifest["clips_written"] == len(rows)
    assert assert_only_whole_shards(mnt / "out" / "shards") == len(rows)
    for tar in sorted((tmp_path / "clean" / "shards").iterdir()):
        assert (mnt / "out" / "shards" / tar.name).read_bytes() == tar.read_bytes(), tar.name
    samples, failures = read_all(mnt / "out")
    assert len(samples) == len(rows) and failures == []


def test_tokenize_on_a_full_disk_fails_cleanly_then_resumes(small_disk, tmp_path):
    import io

    import soundfile as sf

    from cadenza.testing.mediaserver import synth_audio

    mnt, resize = small_disk
    audio = tmp_path / "audio"
    for i in range(3):
        key = f"clip{i}xxxxxx_00000000_00001000"
        buf = io.BytesIO()
        sf.write(buf, synth_audio(1.0, 32_000, seed=i, channels=1)[0], 32_000, format="FLAC", subtype="PCM_16")
        meta = {"ytid": key[:11], "key": key, "row": i + 1, "caption": f"chord {i}", "sample_rate": 32_000}
        shards.write_shard(str(audio / "shards" / shards.shard_name("audio", i)),
                           [{"__key__": key, "flac": buf.getvalue(), "txt": "c", "json": json.dumps(meta)}],
                           {"samples": 1})
    args = ["tokenize", "--shards", str(audio), "--codec-random-init", "--codec-small", "--clusters", "4",
            "--text", "none", "--no-progress", "--optimize", "eager"]
    env = cli_env(OMP_NUM_THREADS="1")
    resize(64 * 1024)  # too small for the saved codec
    full = run_cli([*args, "--out", str(mnt / "tok")], env=env)
    assert full.returncode == 3, full.stderr[-3000:]
    assert "error: no space left on device" in full.stderr
    if (mnt / "tok" / "shards").is_dir():
        assert_only_whole_shards(mnt / "tok" / "shards")

    resize(64 * 1024 * 1024)
    resumed = run_cli([*args, "--out", str(mnt / "tok")], env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    clean = run_cli([*args, "--out", str(tmp_path / "clean")], env=env)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert assert_only_whole_shards(mnt / "tok" / "shards") == 3
    got, want = token_samples(mnt / "tok"), token_samples(tmp_path / "clean")
    assert sorted(got) == sorted(want) and len(got) == 3
    for key in want:
        for ext in ("semantic.npy", "acoustic.npy"):
            assert (got[key][ext] == want[key][ext]).all(), (key, ext)
