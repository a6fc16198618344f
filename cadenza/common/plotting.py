"""What every HTML report shares: headless pyplot and the one way a number is written in a table cell."""

from __future__ import annotations

import html
import math
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: reports are written on servers and CI, with no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cell(v: Any) -> str:
    """A value for an HTML table: floats to 4 significant digits (NaN as n/a), anything else escaped."""
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    return html.escape(str(v))
