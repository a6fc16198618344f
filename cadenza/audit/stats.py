"""Small-sample statistics for the audit: 2x2 tables, multiple testing, stratification (the Wilson interval
of a proportion is cadenza.common.stats.wilson, shared with the evaluation).

scipy does the tests (chi-square, Fisher's exact, the chi-square tail) and the Benjamini-Hochberg
adjustment; what scipy lacks is written here from the standard references:
- Mantel-Haenszel pooled risk ratio with the Greenland-Robins (1985) variance, pooled odds ratio
  with the Robins-Breslow-Greenland (1986) variance, and the Cochran-Mantel-Haenszel test with
  continuity correction (Rothman, Greenland & Lash, Modern Epidemiology, 3rd ed., ch. 15).
Effect sizes get the Haldane-Anscombe +0.5 correction when a cell is zero, so they stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from cadenza.common.stats import Z95


@dataclass(frozen=True)
class TwoByTwo:
    """Exposure (in the group) x outcome (descriptor present / survived), with effect sizes and a test.

    a: in group with outcome, b: in group without, c: rest with outcome, d: rest without.
    """

    a: int
    b: int
    c: int
    d: int
    rate_in: float
    rate_rest: float
    rr: float
    rr_ci: tuple[float, float]
    odds_ratio: float
    or_ci: tuple[float, float]
    p: float
    test: str  # "fisher" | "chi2"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rr_ci"], d["or_ci"] = list(self.rr_ci), list(self.or_ci)
        return d


def _log_ci(estimate: float, se: float, z: float = Z95) -> tuple[float, float]:
    if not math.isfinite(se) or estimate <= 0:
        return 0.0, math.inf
    return math.exp(math.log(estimate) - z * se), math.exp(math.log(estimate) + z * se)


def two_by_two(a: int, b: int, c: int, d: int) -> TwoByTwo:
    """Risk ratio (Katz log CI), odds ratio (Woolf log CI) and a test of independence.

    Fisher's exact test when any expected count is below 5, else chi-square with Yates' correction.
    """
    n1, n0 = a + b, c + d
    rate_in = a / n1 if n1 else 0.0
    rate_rest = c / n0 if n0 else 0.0
    ha, hb, hc, hd = (x + 0.5 for x in (a, b, c, d)) if min(a, b, c, d) == 0 else (a, b, c, d)
    rr = (ha / (ha + hb)) / (hc / (hc + hd))
    rr_se = math.sqrt(1 / ha - 1 / (ha + hb) + 1 / hc - 1 / (hc + hd))
    odds = (ha * hd) / (hb * hc)
    or_se = math.sqrt(1 / ha + 1 / hb + 1 / hc + 1 / hd)
    table = np.array([[a, b], [c, d]])
    if n1 == 0 or n0 == 0 or a + c == 0 or b + d == 0:
        p, test = 1.0, "none"
    else:
        expected = stats.contingency.expected_freq(table)
        if expected.min() < 5:
            p, test = float(stats.fisher_exact(table).pvalue), "fisher"
        else:
            p, test = float(stats.chi2_contingency(table, correction=True).pvalue), "chi2"
    return TwoByTwo(a, b, c, d, rate_in, rate_rest, rr, _log_ci(rr, rr_se), odds, _log_ci(odds, or_se), p, test)


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values), in the input order."""
    if len(pvalues) == 0:
        return []
    return [float(q) for q in stats.false_discovery_control(np.asarray(pvalues, dtype=float), method="bh")]


@dataclass(frozen=True)
class MantelHaenszel:
    rr: float
    rr_ci: tuple[float, float]
    odds_ratio: float
    or_ci: tuple[float, float]
    chi2: float
    p: float
    strata_used: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rr_ci"], d["or_ci"] = list(self.rr_ci), list(self.or_ci)
        return d


def mantel_haenszel(strata: Sequence[tuple[int, int, int, int]]) -> MantelHaenszel:
    """Pooled RR and OR across strata of 2x2 tables (a, b, c, d), and the CMH test of no association.

    Strata with fewer than two clips, or without both exposed and unexposed clips, carry no
    information and are skipped.
    """
    t = np.array([s for s in strata if sum(s) >= 2 and s[0] + s[1] > 0 and s[2] + s[3] > 0], dtype=float)
    if len(t) == 0:
        return MantelHaenszel(1.0, (0.0, math.inf), 1.0, (0.0, math.inf), 0.0, 1.0, 0)
    a, b, c, d = t.T
    n1, n0 = a + b, c + d
    m1, m0 = a + c, b + d
    n = n1 + n0
    # risk ratio, Greenland-Robins variance of its log
    r_num, r_den = (a * n0 / n).sum(), (c * n1 / n).sum()
    if r_num > 0 and r_den > 0:
        rr = r_num / r_den
        var = ((n1 * n0 * m1 - a * c * n) / n**2).sum() / (r_num * r_den)
        rr_ci = _log_ci(rr, math.sqrt(max(var, 0.0)))
    else:
        rr, rr_ci = (0.0 if r_num == 0 else math.inf), (0.0, math.inf)
    # odds ratio, Robins-Breslow-Greenland variance of its log
    r, s = a * d / n, b * c / n
    sr, ss = r.sum(), s.sum()
    if sr > 0 and ss > 0:
        odds = sr / ss
        pp, qq = (a + d) / n, (b + c) / n
        var = (pp * r).sum() / (2 * sr**2) + (pp * s + qq * r).sum() / (2 * sr * ss) + (qq * s).sum() / (2 * ss**2)
        or_ci = _log_ci(odds, math.sqrt(var))
    else:
        odds, or_ci = (0.0 if sr == 0 else math.inf), (0.0, math.inf)
    # Cochran-Mantel-Haenszel chi-square (1 df), continuity corrected
    expected = n1 * m1 / n
    variance = np.where(n > 1, n1 * n0 * m1 * m0 / (n**2 * np.maximum(n - 1, 1)), 0.0)
    v = variance.sum()
    if v > 0:
        chi2 = max(abs(a.sum() - expected.sum()) - 0.5, 0.0) ** 2 / v
        p = float(stats.chi2.sf(chi2, 1))
    else:
        chi2, p = 0.0, 1.0
    return MantelHaenszel(float(rr), rr_ci, float(odds), or_ci, float(chi2), p, len(t))


def ratio_text(x: float) -> str:
    """A ratio for prose: 2 significant figures, inf spelled out."""
    if math.isinf(x):
        return "inf"
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


def pct(x: float) -> str:
    """A share for prose and tables: a percent with one decimal, n/a for no share (NaN)."""
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def pct_ci(ci: Sequence[float]) -> str:
    """A share's 95% CI for prose and tables; a Wilson CI of no clips (NaN bounds) reads [n/a, n/a]."""
    return f"[{pct(ci[0])}, {pct(ci[1])}]"
