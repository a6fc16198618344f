"""The tokenize Beam pipeline end to end on small synthesized audio shards (real Beam, tars, EnCodec)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.formats import shards
from cadenza.formats.failures import read_failures
from cadenza.pipelines.tokenize.config import TokenizeConfig
from cadenza.pipelines.tokenize.run import run_tokenize
from cadenza.pipelines.tokenize.setup import check_manifest_tokenizers, fit_kmeans
from cadenza.tokenizers.acoustic_loading import load_acoustic_for_tokens
from cadenza.tokenizers.base import TokenizerMismatchError

torch.set_num_threads(1)  # one thread: faster than two on a shared 2-core box, and codes depend on it


def npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def token_samples(out: str) -> dict[str, dict]:
    return {s["__key__"]: s for tar in shards.list_shards(f"{out}/shards") for s in shards.iter_tar_samples(tar)}


def config(audio: str, out: Path, **kw) -> TokenizeConfig:
    base = {"codec_random_init": True, "codec_small": True, "clusters": 8, "progress": False, "calibration_clips": 4}
    return TokenizeConfig(shards=audio, out=str(out), **{**base, **kw})


@pytest.mark.slow
def test_every_clip_ends_in_tokens_or_a_failure_deterministically_and_resumably(small_audio_dir, tmp_path):
    out = tmp_path / "tokens"
    manifest = run_tokenize(config(small_audio_dir, out))

    assert manifest["kind"] == "tokens" and manifest["random_weights"] is True and manifest["codec_dir"] == "codec"
    assert manifest["clips_written"] == 4 and manifest["failures"] == 1
    assert manifest["failures_by_category"] == {"decode": 1}
    failures = read_failures(str(out / "failures"))
    assert [f.key for f in failures] == ["ccccccccccc_00000000_00002000"] and failures[0].row == 3
    assert failures[0].ytid == "ccccccccccc"

    samples = token_samples(str(out))
    assert sorted(samples) == ["aaaaaaaaaaa_00000000_00002000", "bbbbbbbbbbb_00000000_00002000",
                               "ddddddddddd_00000000_00002000", "eeeeeeeeeee_00000000_00002000"]
    tok = manifest["tokenizers"]
    for sample in samples.values():
        assert set(sample) - {"__key__", "__url__"} == {"semantic.npy", "acoustic.npy", "text.npy", "aspects.npy",
                                                         "json", "txt"}
        semantic, acoustic, text = npy(sample["semantic.npy"]), npy(sample["acoustic.npy"]), npy(sample["text.npy"])
        assert semantic.dtype == np.int16 and semantic.shape == (100,) and semantic.max() < 8
        assert acoustic.dtype == np.int16 and acoustic.shape == (8, 150) and acoustic.max() < 1024
        assert text.dtype == np.float16 and text.shape == (384,)
        meta = json.loads(sample["json"])
        assert meta["tokenizers"] == {k: tok[k]["fingerprint"] for k in ("semantic", "acoustic", "text")}
        assert meta["frame_rates"] == {"semantic": 50.0, "acoustic": 75.0} and meta["random_weights"] is True
        assert sample["txt"].decode() == meta["caption"]

    # the sampler can decode with exactly the codec that made the tokens
    codec = load_acoustic_for_tokens(str(out))
    assert codec.fingerprint() == tok["acoustic"]["fingerprint"] and codec.random_weights
    first = npy(samples["aaaaaaaaaaa_00000000_00002000"]["acoustic.npy"])
    assert codec.decode(first).shape == (150 * 320,)

    # resume: only the shard without a completion marker is redone, to the same bytes
    tars = sorted((out / "shards").glob("*.tar"))
    before = {t.name: t.read_bytes() for t in tars}
    kept_mtime = tars[1].stat().st_mtime_ns
    Path(shards.stats_path(str(tars[0]))).unlink()
    tars[0].unlink()
    run_tokenize(config(small_audio_dir, out))
    assert {t.name: t.read_bytes() for t in sorted((out / "shards").glob("*.tar"))} == before
    assert tars[1].stat().st_mtime_ns == kept_mtime

    # determinism across fresh runs (same seed: same codec, k-means and tokens)
    again = tmp_path / "again"
    run_tokenize(config(small_audio_dir, again))
    assert {t.name: t.read_bytes() for t in sorted((again / "shards").glob("*.tar"))} == before


def test_tokenizer_mismatch_is_detected_from_the_manifest(small_audio_dir, tmp_path):
    out = tmp_path / "tokens"
    manifest = run_tokenize(config(small_audio_dir, out, text="none"))
    assert manifest["tokenizers"]["text"] is None
    assert "text.npy" not in next(iter(token_samples(str(out)).values()))

    # a trainer comparing manifests: same tokenizers pass, a different k-means is refused
    check_manifest_tokenizers(manifest, manifest["tokenizers"] | {"text": {"fingerprint": None}})
    other = dict(manifest["tokenizers"], semantic={"fingerprint": "0" * 16})
    with pytest.raises(TokenizerMismatchError, match="semantic"):
        check_manifest_tokenizers(manifest, other, where=str(out))

    # writing more tokens into the same dir with another k-means is refused
    other_kmeans = str(tmp_path / "other.npz")
    fit_kmeans(small_audio_dir, other_kmeans, clusters=6, progress=False)
    with pytest.raises(TokenizerMismatchError, match="semantic"):
        run_tokenize(config(small_audio_dir, out, text="none", kmeans=other_kmeans))

    # a codec whose fingerprint differs from the manifest is refused when loading for decoding
    path = out / "manifest.json"
    tampered = json.loads(path.read_text())
    tampered["tokenizers"]["acoustic"]["fingerprint"] = "f" * 16
    path.write_text(json.dumps(tampered))
    with pytest.raises(TokenizerMismatchError, match="acoustic tokenizer mismatch"):
        load_acoustic_for_tokens(str(out))
