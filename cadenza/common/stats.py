"""The proportion interval every report shares: the audit's shares and survival rates, the evaluation's
adherence accuracy."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval (Wilson 1927) for k successes out of n: closed form, valid at k = 0 and k = n.

    No clips, no interval: both bounds are NaN when n is 0, which reports show as n/a (a [0%, 0%] would read
    as a measured zero)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
