"""The trial intervals' coverage at 3-5 trials, measured against the percentile bootstrap they replace.

A seeded simulation: R samples of n trials from a known distribution (a normal, and a skewed
lognormal), the 95% interval of each sample's median, and the share of the intervals that hold
the true median (the coverage; 0.95 is what "95%" promises). The baseline is the lab's earlier
method re-run with its exact settings (scipy.stats.bootstrap, percentile, 9,999 resamples, seed
0; every row of a sample matrix at once, which is the same computation). Run with `-s` to see
the table; docs/METHOD.md quotes it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from flashlab.analysis import intervals

R = 300  # samples per cell: the coverage's standard error is ~0.013 at 0.95
Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]
DISTRIBUTIONS: dict[str, tuple[Draw, float]] = {  # name -> (draw, true median)
    "normal": (lambda rng, size: rng.normal(10.0, 2.0, size), 10.0),
    "lognormal": (lambda rng, size: rng.lognormal(0.0, 1.0, size), 1.0),
}


def _median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def _median_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(b, axis=axis) - np.median(a, axis=axis)


def _percentile(samples: tuple[np.ndarray, ...], statistic: Callable) -> tuple[np.ndarray, ...]:
    """The earlier method, on every row of the sample matrices."""
    result = stats.bootstrap(
        samples, statistic, n_resamples=9_999, confidence_level=0.95, method="percentile",
        vectorized=True, paired=False, axis=-1, batch=1_000, rng=np.random.default_rng(0),
    )  # fmt: skip
    return result.confidence_interval.low, result.confidence_interval.high


def _covered(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


def _median_coverage(dist: str, n: int) -> tuple[float, float]:
    """(old, new) coverage of the true median, on the same R samples of n trials."""
    draw, truth = DISTRIBUTIONS[dist]
    seed = 1000 * (1 + list(DISTRIBUTIONS).index(dist)) + n  # each cell its own draws
    samples = draw(np.random.default_rng(seed), (R, n))
    old = _covered(*_percentile((samples,), _median), truth)
    new = [intervals.median_ci(list(row)) for row in samples]
    low, high = (np.array([getattr(ci, side) for ci in new]) for side in ("low", "high"))
    return old, _covered(low, high, truth)


def test_the_median_interval_covers_at_three_to_five_trials() -> None:
    cells = [(d, n) for d in DISTRIBUTIONS for n in (3, 4, 5)] + [("normal", 8)]
    table = {(d, n): _median_coverage(d, n) for d, n in cells}
    print("\ncoverage of the true median, nominal 0.95 (percentile bootstrap -> now):")
    for (dist, n), (old, new) in table.items():
        print(f"  {dist:9} n={n}: {old:.3f} -> {new:.3f}")
    assert table["normal", 5][1] >= 0.90
    for (dist, n), (old, new) in table.items():
        assert new >= 0.90, (dist, n, new)
        if n <= 5:  # where the percentile bootstrap could only return the range of the trials
            assert new > old, (dist, n, old, new)
    # n = 8: order statistics, distribution-free: [x(1), x(8)], exactly 1 - 2/2^8 = 0.992.
    assert table["normal", 8][1] >= 0.95


def test_the_difference_interval_covers_at_three_and_five_trials() -> None:
    """B - A of the medians when B spreads 4x wider (sd 1 vs 4; true difference 2)."""
    rng = np.random.default_rng(7)
    print("\ncoverage of median(B) - median(A), nominal 0.95 (percentile bootstrap -> now):")
    for n in (3, 5):
        a, b = rng.normal(10.0, 1.0, (R, n)), rng.normal(12.0, 4.0, (R, n))
        old = _covered(*_percentile((a, b), _median_diff), 2.0)
        new = [intervals.diff_ci(list(x), list(y)) for x, y in zip(a, b, strict=True)]
        low, high = (np.array([getattr(ci, side) for ci in new]) for side in ("low", "high"))
        covered = _covered(low, high, 2.0)
        print(f"  normal sd 1 vs 4, n={n}: {old:.3f} -> {covered:.3f}")
        assert covered >= 0.93, (n, covered)
        if n == 3:
            assert covered > old, (old, covered)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], intervals.Interval(0, None, None, None)),
        ([None, None], intervals.Interval(0, None, None, None)),
        ([5.0], intervals.Interval(1, 5.0, None, None)),  # one trial: no interval
        ([5.0, None], intervals.Interval(1, 5.0, None, None)),  # None dropped
        ([0.0, 0.0, 0.0], intervals.Interval(3, 0.0, 0.0, 0.0)),  # all equal: zero width
        ([7.0] * 9, intervals.Interval(9, 7.0, 7.0, 7.0)),
    ],
)
def test_degenerate_trials_have_a_sensible_answer(
    values: list[float | None], expected: intervals.Interval
) -> None:
    assert intervals.median_ci(values) == expected


def test_small_sets_get_a_t_interval_larger_ones_order_statistics() -> None:
    two = intervals.median_ci([1.0, 2.0])  # n = 2: t(0.975, 1) = 12.7, wide as it should be
    assert two.low is not None and two.high is not None
    assert two.low < 1.0 and two.high > 2.0 and two.median == 1.5
    assert (two.median - two.low) == pytest.approx(two.high - two.median)
    three = intervals.median_ci([700.0, 750.0, 900.0])
    assert three == intervals.median_ci([900.0, 700.0, 750.0])  # no randomness, order-free
    assert three.low is not None and three.high is not None
    assert three.low < 700.0 and three.high > 900.0  # beyond the range: the range is 75%
    six = intervals.median_ci([3.0, 1.0, 6.0, 2.0, 5.0, 4.0])
    assert (six.low, six.high) == (1.0, 6.0)  # [x(1), x(6)]: 1 - 2/64 = 0.969
    nine = intervals.median_ci([float(v) for v in range(1, 10)])
    assert (nine.low, nine.high) == (2.0, 8.0)  # [x(2), x(8)]: 0.961
    assert intervals.method()["confidence"] == 0.95


def test_difference_degenerate_cases() -> None:
    assert intervals.diff_ci([], [1.0, 2.0]) == intervals.Interval(0, None, None, None)
    assert intervals.diff_ci([1.0], [2.0, 3.0]) == intervals.Interval(1, 1.5, None, None)
    assert intervals.diff_ci([1.0, 1.0], [3.0, 3.0, 3.0]) == intervals.Interval(2, 2.0, 2.0, 2.0)
    one_spread = intervals.diff_ci([1.0, 1.0, 1.0], [2.0, 3.0, 4.0])
    assert one_spread.low is not None and one_spread.high is not None
    assert one_spread.low < 2.0 < one_spread.high  # the constant side adds no width
