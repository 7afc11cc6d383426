"""Confidence intervals for repeated trials: the median, and the difference of two, at 95% even for 3-5 trials.

One method everywhere (trials.json, `flashlab compare`, `flashlab matrix --repeat`, sweeps), so
two numbers from the lab are always comparable, and no randomness: the same trial values always
give the same interval. The statistic is the median (robust to one odd trial).

The median's interval (`median_ci`), chosen by measuring coverage (docs/METHOD.md, section 3;
tests/test_intervals.py re-measures it):

* n >= 6: the distribution-free order-statistic interval [x(k), x(n+1-k)] with the largest k whose
  exact binomial coverage is still >= 95% (`scipy.stats.quantile_test(...).confidence_interval`);
  it holds for any continuous distribution and stays inside the observed values.
* 2 <= n <= 5: no interval between two of the values reaches 95%: the range of n values covers
  the median with probability 1 - 2 / 2^n, 75% for 3, 87.5% for 4, 93.75% for 5. The percentile
  bootstrap (this module's earlier method) and BCa both pick their bounds among the values, so
  they can do no better; they returned the range and under-covered. Here the interval is
  median +- t(0.975, n - 1) * SE, SE = sqrt(pi / 2) * s / sqrt(n), the large-n standard error
  of a normal sample's median (larger than the exact small-n one, so on the safe side). It
  reaches beyond the values, and may go below zero for a quantity that cannot.

The difference (`diff_ci`): median(b) - median(a) +- t(0.975, df) * sqrt(SE_a^2 + SE_b^2), with
Welch-Satterthwaite degrees of freedom (the two sides may spread differently).

Degenerate inputs: no values, no median; one value (on either side) has no interval (None:
nothing to say how far it could be); values that are all equal (on both sides) have the
zero-width interval at that value (no spread was seen); two values get the t interval, wide
(t(0.975, 1) = 12.7) as two values warrant. Nothing here raises on a list of floats and Nones.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95
# sd of a normal sample's median / sd of its mean, as n grows (the exact ratio is smaller for
# small n: about 1.16 at n = 3, 1.09 at 4, 1.20 at 5), so the SE below errs on the wide side.
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)
METHOD = "order statistics (distribution-free, n >= 6); n < 6: t with the median's standard error"
DIFF_METHOD = "Welch t with each median's standard error"


@dataclass(frozen=True)
class Interval:
    """A point estimate (median, or difference of medians) and its 95% interval; low/high None when n < 2."""

    n: int
    median: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def method() -> dict[str, Any]:
    """How every interval was computed, recorded beside the intervals (trials.json, compare)."""
    return {
        "statistic": "median",
        "method": METHOD,
        "difference": DIFF_METHOD,
        "confidence": CONFIDENCE,
    }


def _clean(values: list[float | None]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None], dtype=float)


def _t(df: float) -> float:
    # start-up cost: only this path pays for scipy
    from scipy import stats as scistats

    return float(scistats.t.ppf(0.5 + CONFIDENCE / 2, df))


def _median_se(x: np.ndarray) -> float:
    return MEDIAN_SE_FACTOR * float(np.std(x, ddof=1)) / math.sqrt(x.size)


def _order_statistic(x: np.ndarray) -> tuple[float, float] | None:
    """The order-statistic interval of the median, None when no pair of values reaches CONFIDENCE."""
    # start-up cost: only this path pays for scipy
    from scipy import stats as scistats

    test = scistats.quantile_test(x, q=float(np.median(x)), p=0.5)
    ci = test.confidence_interval(confidence_level=CONFIDENCE)
    if np.isnan(ci.low) or np.isnan(ci.high):
        return None
    return float(ci.low), float(ci.high)


def median_ci(values: list[float | None]) -> Interval:
    """Median of the measured values (None ones dropped) and its 95% interval."""
    x = _clean(values)
    if x.size == 0:
        return Interval(0, None, None, None)
    median = float(np.median(x))
    if x.size == 1:
        return Interval(1, median, None, None)
    if np.all(x == x[0]):
        return Interval(int(x.size), median, median, median)
    # The widest order-statistic interval, the range, covers with probability 1 - 2 / 2^n.
    bounds = _order_statistic(x) if 1 - 2.0 ** (1 - x.size) >= CONFIDENCE else None
    if bounds is None:  # n < 6
        half = _t(x.size - 1) * _median_se(x)
        bounds = (median - half, median + half)
    return Interval(int(x.size), median, *bounds)


def diff_ci(a: list[float | None], b: list[float | None]) -> Interval:
    """median(b) - median(a) and its 95% interval (Welch t on the medians' standard errors)."""
    xa, xb = _clean(a), _clean(b)
    if xa.size == 0 or xb.size == 0:
        return Interval(0, None, None, None)
    diff = float(np.median(xb) - np.median(xa))
    n = int(min(xa.size, xb.size))
    if xa.size < 2 or xb.size < 2:
        return Interval(n, diff, None, None)
    var_a, var_b = _median_se(xa) ** 2, _median_se(xb) ** 2
    if var_a + var_b == 0:
        return Interval(n, diff, diff, diff)
    df = (var_a + var_b) ** 2 / (var_a**2 / (xa.size - 1) + var_b**2 / (xb.size - 1))
    half = _t(df) * math.sqrt(var_a + var_b)
    return Interval(n, diff, diff - half, diff + half)
