"""Demo dataset build speed: synthesis + AAC encoding, 1 vs 2 workers, and the cost of a reusing rerun.

Prints ratios against the single-worker build measured in the same process.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from cadenza.demo import dataset, style_renderers, synth
from cadenza.demo.dataset import build_demo_dataset

N = 14


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base, _ = timed(lambda: build_demo_dataset(root / "w1", N, seed=0, workers=1, progress=False))
        two, _ = timed(lambda: build_demo_dataset(root / "w2", N, seed=0, workers=2, progress=False))
        rerun, ds = timed(lambda: build_demo_dataset(root / "w2", N, seed=0, workers=2, progress=False))
        assert ds.reused
        per_style = {s: timed(lambda s=s: synth.render(s, 0, dataset.MEDIA_DURATION_S))[0]
                     for s in style_renderers.RENDERERS}
    audio_s = N * dataset.MEDIA_DURATION_S
    print(f"demo dataset, {N} clips x {dataset.MEDIA_DURATION_S:g} s at {synth.DEFAULT_SR} Hz (m4a)")
    print(f"  1 worker (baseline): {base:6.2f} s  ({audio_s / base:5.1f}x real time)")
    print(f"  2 workers:           {two:6.2f} s  speedup {base / two:4.2f}x")
    print(f"  rerun (reuse):       {rerun:6.3f} s  {base / rerun:6.0f}x faster than building")
    print("  render only, per 20 s piece: " + ", ".join(f"{s} {t:.2f}s" for s, t in per_style.items()))


if __name__ == "__main__":
    main()
