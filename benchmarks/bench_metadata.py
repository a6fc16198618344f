"""Loading + validating the real MusicCaps CSV, against pandas.read_csv of the same file (no validation).

    python benchmarks/bench_metadata.py [CSV]

Prints medians over repeats and the ratio to the baseline measured in the same process.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from cadenza.musiccaps import load_musiccaps

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "musiccaps" / "musiccaps-public.csv"


def median_time(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    csv = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    if not csv.is_file():
        print(f"skip: no CSV at {csv}")
        return
    load_musiccaps(csv)  # warm-up
    ours = median_time(lambda: load_musiccaps(csv))
    base = median_time(lambda: pd.read_csv(csv))
    n = len(load_musiccaps(csv).clips)
    print(f"rows valid               {n}")
    print(f"load+validate (cadenza)  {ours * 1000:8.1f} ms")
    print(f"pandas.read_csv only     {base * 1000:8.1f} ms")
    print(f"ratio cadenza/pandas     {ours / base:8.2f}x")


if __name__ == "__main__":
    main()
