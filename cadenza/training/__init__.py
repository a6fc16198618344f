"""Train and sample a small two-stage MusicLM-style model on cadenza token shards (evaluation: `cadenza.evaluation`).

- `data`: streaming WebDataset loader over token shards (exact-resume data position, weights, crops)
- `model`: decoder-only transformer for both stages (text -> semantic, text + semantic -> acoustic)
- `trainer`: `TrainConfig`, `train()` (AdamW, warmup + cosine, DDP, safetensors checkpoints)
- `sampler`: `SampleConfig`, `generate()`, `sample()` (KV cache, CFG, WAV + spectrogram)
- `batch`: token samples padded into one torch batch
- `checkpoint`, `runlog`: safetensors checkpoints and the run log (shared with the codec trainer)
- `synthetic`: a learnable synthetic token dataset for tests, benchmarks and offline demos

Heavy imports (torch) live in the submodules; importing this package is cheap.
"""
