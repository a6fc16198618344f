"""Real ingest and tokenize outputs read by the clients people already use, with the README's own recipes.

One ingest over the loopback media server (one shard whose rows all fail) and one tokenize of it; then
webdataset with cadenza's decoder, Hugging Face `datasets` (offline), a stable-audio-tools style prompt
check, the per-shard tables and the README's pandas query over samples.parquet.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from ingest_testkit import media_dir, ontology_file, write_csv  # noqa: F401 (media_dir is a fixture)
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.pipelines.ingest.run import IngestConfig, run_ingest
from cadenza.pipelines.tokenize.config import TokenizeConfig
from cadenza.pipelines.tokenize.run import run_tokenize
from cadenza.testing.mediaserver import MediaServer

torch.set_num_threads(1)
README = Path(__file__).resolve().parents[2] / "README.md"
CAPTIONS = {"goodAAAAAAA": "An Indian classical raga played on sitar and tabla.",
            "goodBBBBBBB": "A Western pop song with electric guitar and drums.",
            "goodCCCCCCC": "A Brazilian samba with cavaquinho and pandeiro."}
# shard size 2: shard 1 holds only the two rows the server refuses, so it has no tar
ROWS = [("goodAAAAAAA", 0, 4), ("goodBBBBBBB", 0, 4), ("f404xxxxxxx", 0, 4), ("f410xxxxxxx", 0, 4),
        ("goodCCCCCCC", 0, 4), ("goodAAAAAAA", 5, 9)]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf-home"))


@pytest.fixture(scope="module")
def outputs(media_dir, tmp_path_factory):  # noqa: F811
    """(ingest dir, tokens dir, audit dir) of real pipeline runs."""
    from cadenza.audit.taxonomy_file import load_taxonomy
    from cadenza.formats.assignments import write_assignments
    from cadenza.musiccaps import load_musiccaps

    d = tmp_path_factory.mktemp("readers")
    csv = write_csv(d / "mc.csv", [(y, s, e, CAPTIONS.get(y, "A calm chord.")) for y, s, e in ROWS])
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404", "f410xxxxxxx": "410"}) as srv:
        run_ingest(IngestConfig(csv=str(csv), out=str(d / "audio"), source_url_template=srv.url_template("m4a"),
                                shard_size=2, max_attempts=1, socket_timeout_s=5, progress=False,
                                ontology=str(ontology_file(d / "onto.json"))),
                   ["--direct_running_mode=in_memory"])
    run_tokenize(TokenizeConfig(shards=str(d / "audio"), out=str(d / "tokens"), codec_random_init=True,
                                codec_small=True, clusters=4, calibration_clips=2, text="none", optimize="eager",
                                progress=False))
    (d / "audit").mkdir()
    write_assignments(d / "audit", (a.to_dict() for a in load_taxonomy().assign_all(load_musiccaps(str(csv)).clips)))
    return d / "audio", d / "tokens", d / "audit"


def readme_recipes() -> list[str]:
    """The python blocks of the README's "Reading the shards" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Reading the shards", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run_recipe(index: int, outputs) -> dict:
    audio, tokens, audit = outputs
    code = readme_recipes()[index]
    assert len(code.strip().splitlines()) <= 5, code
    scope = {"AUDIO": str(audio), "TOKENS": str(tokens), "AUDIT": str(audit)}
    exec(compile(code, f"README recipe {index}", "exec"), scope)  # noqa: S102 (the README's own code)
    return scope


def tar_keys(tar: Path) -> list[str]:
    with tarfile.open(tar) as t:
        return sorted({m.name.split(".", 1)[0] for m in t.getmembers()})


def all_keys(out: Path) -> list[str]:
    return sorted(k for tar in (out / "shards").glob("*.tar") for k in tar_keys(tar))


def test_shard_dirs_hold_only_tars_and_every_table_matches_its_tar(outputs):
    audio, tokens, _ = outputs
    assert sorted(p.name for p in (audio / "shards").iterdir()) == ["audio-000000.tar", "audio-000002.tar"]
    assert sorted(p.name for p in (audio / "stats").iterdir()) == [f"audio-00000{i}.stats.json" for i in range(3)]
    assert json.loads((audio / "manifest.json").read_text())["shards_without_samples"] == ["audio-000001.tar"]
    assert all(p.suffix == ".tar" for p in (tokens / "shards").iterdir())
    for out in (audio, tokens):
        for tar in (out / "shards").glob("*.tar"):
            table = pq.read_table(out / "samples" / tar.name.replace(".tar", ".parquet"))
            assert sorted(table.column("key").to_pylist()) == tar_keys(tar)
    index = pq.read_table(audio / "samples.parquet").to_pandas()
    assert sorted(index[index.status == "success"].key) == all_keys(audio)
    lost = index[index.status == "failed"].set_index("ytid")
    assert lost.loc["f404xxxxxxx", "category"] == "not_found" and lost.loc["f410xxxxxxx", "category"] == "gone"
    assert lost.loc["f404xxxxxxx", "error_message"] and lost.loc["f404xxxxxxx", "shard"] == "audio-000001.tar"
    row = index[index.ytid == "goodBBBBBBB"].iloc[0]
    assert (row.caption, row.start_s, row.end_s, row.duration_s) == (CAPTIONS["goodBBBBBBB"], 0.0, 4.0, 4.0)
    assert list(row.labels) == ["/m/04rlf", "/m/05148p4"] and row.url.endswith("goodBBBBBBB.m4a")
    assert row.rms_dbfs < 0 and row.bytes > 1000
    tok = pq.read_table(tokens / "samples.parquet").to_pandas()
    assert sorted(tok[tok.status == "success"].key) == all_keys(tokens) == all_keys(audio)
    assert (tok.semantic_frames > 0).all() and (tok.caption == tok.ytid.map(CAPTIONS)).all()


def test_webdataset_with_cadenza_decoder_gives_float32_audio_and_int16_tokens(outputs):
    scope = run_recipe(0, outputs)
    audio, rate = scope["audio"], scope["rate"]
    assert audio.dtype == np.float32 and audio.shape == (1, 4 * 32000) and rate == 32000
    assert 0 < np.abs(audio).max() <= 1.0 and scope["meta"]["text"] == scope["meta"]["caption"]
    clips = list(scope["clips"].to_tuple("__key__", "flac"))
    assert sorted(k for k, _ in clips) == all_keys(outputs[0])
    for sample in scope["tokens"]:
        assert sample["semantic.npy"].dtype == np.int16 and sample["acoustic.npy"].dtype == np.int16
        assert sample["semantic.npy"].ndim == 1 and sample["acoustic.npy"].ndim == 2


def test_stable_audio_tools_style_prompt_comes_from_text(outputs):
    """Its WebDataset loader finds the audio member by extension and copies json["text"] to "prompt"; a
    sample without one stops its conditioner ("Conditioner key prompt not found")."""
    import webdataset as wds

    from cadenza.formats.audio import wds_decoder

    audio, tokens, _ = outputs
    for out in (audio, tokens):
        for sample in wds.WebDataset(sorted(glob.glob(f"{out}/shards/*.tar")), shardshuffle=False).decode(wds_decoder):
            meta = sample["json"]
            assert "text" in meta, sample["__key__"]
            prompt = meta["text"]
            assert prompt == sample["txt"] == CAPTIONS[meta["ytid"]]
    first = next(iter(wds.WebDataset(sorted(glob.glob(f"{audio}/shards/*.tar")), shardshuffle=False)
                      .decode(wds_decoder)))
    wave, rate = next(first[k] for k in ("flac", "wav", "mp3", "m4a", "ogg", "opus") if k in first)
    assert torch.from_numpy(wave).dtype == torch.float32 and rate == 32000


def test_hugging_face_datasets_reads_audio_shards_by_files_dir_and_directory(outputs):
    from datasets import load_dataset

    audio = outputs[0]
    scope = run_recipe(1, outputs)
    ds, features = scope["ds"], scope["features"]
    assert sorted(ds["__key__"]) == all_keys(audio)
    assert ds[0]["json"]["text"] and np.asarray(ds[0]["audio"], dtype=np.float32).shape == (4 * 32000,)
    by_files = load_dataset("webdataset", data_files=f"{audio}/shards/*.tar", features=features, split="train")
    by_dir = load_dataset(str(audio / "shards"), features=features, split="train")
    assert sorted(by_files["__key__"]) == sorted(by_dir["__key__"]) == all_keys(audio)


def test_hugging_face_datasets_reads_token_shards_by_files_dir_and_directory(outputs):
    from datasets import load_dataset

    tokens = outputs[1]
    scope = run_recipe(2, outputs)
    assert scope["semantic"].dtype == np.int16 and scope["acoustic"].dtype == np.int16
    assert scope["acoustic"].ndim == 2 and len(scope["tok"]) == len(all_keys(tokens))
    assert str(scope["tok"].features["semantic.npy"].feature.dtype) == "int16"  # as stored
    by_dir = load_dataset("webdataset", data_dir=str(tokens / "shards"), split="train")
    as_dir = load_dataset(str(tokens / "shards"), split="train")
    assert sorted(by_dir["__key__"]) == sorted(as_dir["__key__"]) == all_keys(tokens)


def test_whole_output_dirs_and_a_copied_split_view_load_as_their_tars(outputs, tmp_path):
    """A dataset card in each output dir points `load_dataset(dir)` at the tars, not at the more numerous
    .json stats or .parquet tables; a split view (relative links) still loads after the tree is moved."""
    from datasets import Features, Value, load_dataset

    from cadenza.training.splits import split_token_dir

    audio, tokens, _ = outputs
    features = Features({"__key__": Value("string"), "flac": Value("binary")})
    assert sorted(load_dataset(str(audio), features=features, split="train")["__key__"]) == all_keys(audio)
    assert sorted(load_dataset(str(tokens), split="train")["__key__"]) == all_keys(tokens)
    tree = tmp_path / "tree"
    shutil.copytree(tokens, tree / "tokens")
    split_token_dir(str(tree / "tokens"), str(tree / "split/train"), str(tree / "split/heldout"))
    shutil.copytree(tree, tmp_path / "moved", symlinks=True)
    shutil.rmtree(tree)
    held = load_dataset(str(tmp_path / "moved/split/heldout"), split="train")
    train = load_dataset("webdataset", data_dir=str(tmp_path / "moved/split/train/shards"), split="train")
    assert sorted([*held["__key__"], *train["__key__"]]) == all_keys(tokens) and len(held) and len(train)


def test_readme_query_counts_survivors_per_region(outputs):
    per_region = run_recipe(3, outputs)["per_region"]
    lines = (outputs[2] / "assignments.jsonl").read_text().splitlines()
    regions = {r["key"]: r["groups"]["region"] for r in map(json.loads, lines)}
    expected: dict[str, int] = {}
    for key in all_keys(outputs[0]):
        for region in regions[key]:
            expected[region] = expected.get(region, 0) + 1
    assert per_region.to_dict() == expected
    assert expected["south_asia"] == 2 and expected["latin_america"] == 1


def to_old_layout(src: Path, old: Path) -> dict[str, bytes]:
    """A copy of `src` as versions before this layout wrote it: stats files among the tars, no tables, an
    empty tar for each shard whose rows all failed. Returns the tars with samples, by name."""
    shutil.copytree(src, old)
    shutil.rmtree(old / "samples")
    for f in (old / "samples.parquet", old / "README.md"):
        f.unlink()
    for stats in (old / "stats").iterdir():
        moved = stats.rename(old / "shards" / stats.name)
        if json.loads(moved.read_text())["bytes"] == 0:
            moved.with_name(stats.name.replace(".stats.json", ".tar")).write_bytes(bytes(10240))  # an empty tar
    return {p.name: p.read_bytes() for p in (old / "shards").glob("*.tar") if p.stat().st_size > 10240}


def test_an_old_layout_ingest_dir_resumes_without_refetching_and_is_migrated(outputs, tmp_path):
    old = tmp_path / "old"
    before = to_old_layout(outputs[0], old)
    assert (old / "shards" / "audio-000001.tar").is_file()
    config = json.loads((old / "manifest.json").read_text())["config"]
    # the same settings, its media server long gone: a shard redone would fail its fetches
    again = run_ingest(IngestConfig.from_dict({**config, "out": str(old)}), ["--direct_running_mode=in_memory"])
    assert again["run"]["shards_written"] == 0 and again["clips_written"] == 4
    assert {p.name: p.read_bytes() for p in (old / "shards").iterdir()} == before
    assert pq.read_table(old / "samples.parquet").num_rows == 6


def test_an_old_layout_tokens_dir_resumes_without_retokenizing_and_is_migrated(outputs, tmp_path):
    old = tmp_path / "old"
    before = {name: (old / "shards" / name) for name in to_old_layout(outputs[1], old)}
    mtimes = {name: p.stat().st_mtime_ns for name, p in before.items()}
    manifest = run_tokenize(TokenizeConfig.from_dict({**json.loads((old / "manifest.json").read_text())["config"],
                                                      "out": str(old)}))
    assert manifest["clips_written"] == len(all_keys(outputs[1])) and manifest["incomplete_shards"] == []
    assert {name: p.stat().st_mtime_ns for name, p in before.items()} == mtimes  # nothing rewritten
    assert sorted(p.name for p in (old / "shards").iterdir()) == sorted(before)
    assert pq.read_table(old / "samples.parquet").equals(pq.read_table(outputs[1] / "samples.parquet"))


def test_index_command_rebuilds_tables_and_refuses_a_non_output_dir(outputs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(outputs[1], copy)
    shutil.rmtree(copy / "samples")
    result = CliRunner().invoke(app, ["index", str(copy), "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["success"] == len(all_keys(outputs[1])) and counts["rows"] == counts["success"] + counts["failed"]
    assert pq.read_table(copy / "samples.parquet").equals(pq.read_table(outputs[1] / "samples.parquet"))
    bad = CliRunner().invoke(app, ["index", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "not a cadenza output dir" in bad.output
