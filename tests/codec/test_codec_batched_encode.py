"""A trained codec's codes under the GPU variants: batching keeps them (within the 2% a variant may change),
bf16 is measured, not bounded (it is not offered for tokens; see benchmarks/bench_gpu.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadenza.tokenizers.acoustic_loading import load_acoustic
from cadenza.tokenizers.encode_batch import EncodeVariant


@pytest.mark.slow
def test_batched_codes_of_a_trained_codec_match_one_at_a_time(trained_codec):
    from cadenza.demo.synth import render

    torch.set_num_threads(1)
    codec_dir, _record = trained_codec
    one = load_acoustic("encodec_24khz", weights=codec_dir)
    batched = load_acoustic("encodec_24khz", weights=codec_dir, variant=EncodeVariant(batch=4))
    clips = [render(style, seed=10 + i, duration_s=seconds, sr=one.sample_rate).astype(np.float32)
             for i, (style, seconds) in enumerate([("house", 3.0), ("gamelan", 2.4), ("chiptune", 3.0), ("pad", 1.1)])]
    ref, got = one.encode(clips), batched.encode(clips)
    assert [g.shape for g in got] == [(one.num_codebooks, -(-c.size // 320)) for c in clips]
    share = sum(int((a != b).sum()) for a, b in zip(ref, got, strict=True)) / sum(a.size for a in ref)
    assert share <= 0.02, share
