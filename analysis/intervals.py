"""Confidence intervals for repeated trials: the median and its 95% percentile-bootstrap interval.

One method everywhere (trials.json, `flashlab compare`, `flashlab matrix --repeat`), so two
numbers from the lab are always comparable: `scipy.stats.bootstrap` with the percentile method,
`N_RESAMPLES` resamples, confidence `CONFIDENCE`, and a fixed seed (`SEED`), so the same trial
values always give the same interval. The statistic is the median (robust to one odd trial).

Degenerate inputs are answered without resampling: one value has no interval (None); values
that are all equal have the zero-width interval at that value (a bootstrap of a constant is the
constant). With very few trials the percentile bootstrap of a median is close to the range of
the trials and under-covers; docs/METHOD.md says how to read it.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95
N_RESAMPLES = 9_999
SEED = 0
METHOD = "percentile"


@dataclass(frozen=True)
class Interval:
    """A point estimate (median) and its bootstrap interval; low/high None when n < 2."""

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
        "method": f"{METHOD} bootstrap (scipy.stats.bootstrap)",
        "confidence": CONFIDENCE,
        "n_resamples": N_RESAMPLES,
        "seed": SEED,
    }


def _clean(values: list[float | None]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None], dtype=float)


def _bootstrap(samples: tuple[np.ndarray, ...], statistic: Any) -> tuple[float, float]:
    # start-up cost: only this path pays for scipy
    from scipy import stats as scistats

    result = scistats.bootstrap(
        samples,
        statistic,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method=METHOD,
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(SEED),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def _median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def _median_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(b, axis=axis) - np.median(a, axis=axis)


def median_ci(values: list[float | None]) -> Interval:
    """Median of the measured values (None ones dropped) and its bootstrap interval."""
    x = _clean(values)
    if x.size == 0:
        return Interval(0, None, None, None)
    median = float(np.median(x))
    if x.size == 1:
        return Interval(1, median, None, None)
    if np.all(x == x[0]):
        return Interval(int(x.size), median, median, median)
    low, high = _bootstrap((x,), _median)
    return Interval(int(x.size), median, low, high)


def diff_ci(a: list[float | None], b: list[float | None]) -> Interval:
    """median(b) - median(a) and its interval, resampling a and b independently."""
    xa, xb = _clean(a), _clean(b)
    if xa.size == 0 or xb.size == 0:
        return Interval(0, None, None, None)
    diff = float(np.median(xb) - np.median(xa))
    n = int(min(xa.size, xb.size))
    if xa.size < 2 or xb.size < 2:
        return Interval(n, diff, None, None)
    if np.all(xa == xa[0]) and np.all(xb == xb[0]):
        return Interval(n, diff, diff, diff)
    low, high = _bootstrap((xa, xb), _median_diff)
    return Interval(n, diff, low, high)
