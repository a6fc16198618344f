"""The one Wilson interval, used by the audit's shares and the evaluation's adherence accuracy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from cadenza.common.stats import wilson


def test_wilson_matches_scipys_score_interval():
    for k, n in ((37, 120), (7, 10), (1, 3)):
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_at_the_edges_stays_in_zero_one():
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(5, 5)
    assert hi == pytest.approx(1.0) and 0 < lo < 1


def test_wilson_of_no_clips_has_no_interval():
    assert all(math.isnan(b) for b in wilson(0, 0))
