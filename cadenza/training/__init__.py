"""Train, sample and evaluate a small two-stage MusicLM-style model on cadenza token shards.

- `data`: streaming WebDataset loader over token shards (exact-resume data position, weights, crops)
- `model`: decoder-only transformer for both stages (text -> semantic, text + semantic -> acoustic)
- `trainer`: `TrainConfig`, `train()` (AdamW, warmup + cosine, DDP, safetensors checkpoints)
- `sampler`: `SampleConfig`, `generate()`, `sample()` (KV cache, CFG, WAV + spectrogram)
- `evaluate`: `EvalConfig`, `evaluate()` (held-out NLL, token statistics, Frechet features, audit groups)
- `synthetic`: a learnable synthetic token dataset for tests, benchmarks and offline demos

Heavy imports (torch) live in the submodules; importing this package is cheap.
"""
