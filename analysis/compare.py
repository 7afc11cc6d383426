"""`flashlab compare A B`: two run directories or trial sets, metric by metric, with intervals.

A is the baseline, B the candidate. For each key metric (flashlab.analysis.trials.KEY_METRICS)
a `MetricRow` holds A, B, the difference B - A, its interval, and the outcome for B:
- both trial sets (>= 2 trials each): the difference of medians and its 95% CI (Welch t on the
  medians' standard errors, flashlab.analysis.intervals.diff_ci); "better"/"worse" when the
  whole CI is on one side of 0 (the side is the metric's direction: lower latency is better,
  higher throughput is better), else "within noise";
- exact metrics (anomaly counts such as oversell): facts, not samples. Each side's value is its
  worst trial (the maximum); B above A is "worse", below "better", equal "same";
- otherwise (a single run on either side): no interval can be computed, the outcome is
  "single run" and nothing is claimed;
- a metric one side did not measure: "not measured".

Runs of different experiments (experiment name, strategy, shoppers, stock, arrival or faults
differ) are refused (`ComparisonError`) unless `force`; what differed is listed either way,
including a host whose CPU ran at a different speed under A than under B (`host_difference`)
and machines whose measured capacity differed (`capacity_difference`); the relative rows
(p99 / ideal drain, throughput / buy capacity, sell-out / ideal: flashlab.analysis.capacity)
compare timing against each run's own machine.
Reads directories only.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal

from flashlab.analysis import intervals
from flashlab.analysis.hypothesis import HOST_SPREAD_STEADY
from flashlab.analysis.stats import stack_unit_us
from flashlab.analysis.summary import ensure_summary
from flashlab.analysis.trials import KEY_METRICS
from flashlab.analysis.trials import Metric
from flashlab.analysis.trials import Trial
from flashlab.analysis.trials import TrialSetError
from flashlab.analysis.trials import is_trial_set
from flashlab.analysis.trials import load_set
from flashlab.analysis.trials import metric_values
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import load_run

Outcome = Literal["better", "worse", "within noise", "same", "single run", "not measured"]
Basis = Literal["CI", "exact", "single run", "none"]
COMPARE_HTML = "compare.html"

# Experiment fields that make two runs "the same experiment": what the shoppers do and to what.
# Anything else (engine, durability, platform, seed) may differ and is listed, not refused.
# The workload: runs that differ here measured different things (refused without --force).
# The design under test (name, strategy, durability, engine, ...) may differ: it is what a
# comparison is for ("lua beats lock"), so it is only listed.
IDENTITY_FIELDS = (
    ("stock", ("product", "stock")),
    ("shoppers", ("scenario", "shoppers")),
    ("arrival", ("scenario", "arrival")),
    ("faults", ("faults",)),
)
CONTEXT_FIELDS = (
    ("name", ("name",)),
    ("strategy", ("product", "strategy")),
    ("engine", ("engine", "kind")),
    ("client", ("engine", "client")),
    ("durability", ("stack", "durability")),
    ("platform", ("stack", "platform")),
    ("workers", ("stack", "workers")),
)


class ComparisonError(RunDirError):
    """Two inputs that cannot be compared (different experiments without force, bad input)."""


@dataclass(frozen=True)
class Side:
    """One input: a run directory (one trial) or a trial set (n trials)."""

    path: str
    kind: Literal["run", "trial-set"]
    n: int
    experiment: dict[str, Any] = field(repr=False)
    trials: list[Trial] = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.experiment.get("name", ""))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "n": self.n, "experiment": self.name}


@dataclass(frozen=True)
class MetricRow:
    """One metric of the comparison: typed, so JSON, HTML or JUnit can be rendered from it."""

    metric: str
    label: str
    path: str
    better: str  # "lower" | "higher"
    a: float | None
    b: float | None
    diff: float | None  # b - a
    diff_ci_low: float | None
    diff_ci_high: float | None
    basis: Basis
    outcome: Outcome
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    rows: list[MetricRow]
    differences: list[str]  # "strategy: lua vs lock", ...
    forced: bool

    def worse(self, names: list[str]) -> list[MetricRow]:
        """Rows among `names` whose outcome is "worse" (the regression gate)."""
        return [r for r in self.rows if r.metric in names and r.outcome == "worse"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "differences": self.differences,
            "forced": self.forced,
            "intervals": intervals.method(),
            "rows": [asdict(r) for r in self.rows],
        }


# --- loading ------------------------------------------------------------------------------------


def load_side(path: Path | str) -> Side:
    """A trial set (trialset.json) or a single complete run directory."""
    path = Path(path)
    if is_trial_set(path):
        ts = load_set(path)
        return Side(str(path), "trial-set", len(ts.trials), ts.experiment, ts.trials)

    run = load_run(path)  # refuses missing and incomplete runs (RunDirError)
    trial = Trial(
        1, path.name, (run.manifest.get("experiment") or {}).get("seed"), ensure_summary(path)
    )
    return Side(str(path), "run", 1, run.manifest.get("experiment") or {}, [trial])


def _field(experiment: dict[str, Any], keys: tuple[str, ...]) -> Any:
    node: Any = experiment
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def differences(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(identity differences that make them different experiments, other differences)."""

    def diff(fields: tuple[tuple[str, tuple[str, ...]], ...]) -> list[str]:
        return [
            f"{label}: {_short(_field(a, keys))} vs {_short(_field(b, keys))}"
            for label, keys in fields
            if _field(a, keys) != _field(b, keys)
        ]

    return diff(IDENTITY_FIELDS), diff(CONTEXT_FIELDS)


# --- rows ---------------------------------------------------------------------------------------


def _direction(metric: Metric, diff: float) -> Outcome:
    """ "better"/"worse" for B given b - a (0 is "same")."""
    if diff == 0:
        return "same"
    lower_is_better = metric.better == "lower"
    return "better" if (diff < 0) == lower_is_better else "worse"


def _row(metric: Metric, **fields: Any) -> MetricRow:
    return MetricRow(
        metric=metric.name, label=metric.label, path=metric.path, better=metric.better, **fields
    )


def _exact_row(metric: Metric, a: list[float], b: list[float]) -> MetricRow:
    worst_a, worst_b = max(a), max(b)
    diff = worst_b - worst_a
    return _row(
        metric,
        a=worst_a,
        b=worst_b,
        diff=diff,
        diff_ci_low=diff,
        diff_ci_high=diff,
        basis="exact",
        outcome=_direction(metric, diff),
        note="worst trial of each side" if len(a) > 1 or len(b) > 1 else "exact count",
    )


def _ci_row(metric: Metric, a: list[float], b: list[float]) -> MetricRow:
    ci = intervals.diff_ci(list(a), list(b))
    medians = {"a": intervals.median_ci(list(a)).median, "b": intervals.median_ci(list(b)).median}
    if ci.low is None or ci.high is None:
        return _row(
            metric,
            **medians,
            diff=ci.median,
            diff_ci_low=None,
            diff_ci_high=None,
            basis="single run",
            outcome="single run",
            note="a single run has no interval: repeat (--repeat N) to compare",
        )
    outcome: Outcome
    if ci.low > 0 or ci.high < 0:  # the whole interval on one side of zero
        outcome = _direction(metric, ci.low if ci.low > 0 else ci.high)
    else:
        outcome = "same" if ci.low == ci.high == 0 else "within noise"
    return _row(
        metric,
        **medians,
        diff=ci.median,
        diff_ci_low=ci.low,
        diff_ci_high=ci.high,
        basis="CI",
        outcome=outcome,
        note=f"median of {len(a)} vs {len(b)} trials",
    )


def metric_row(metric: Metric, a: Side, b: Side) -> MetricRow:
    va, vb = metric_values(a.trials, metric), metric_values(b.trials, metric)
    missing = [side for side, values in (("A", va), ("B", vb)) if None in values]
    if missing:
        return _row(
            metric, a=None, b=None, diff=None, diff_ci_low=None, diff_ci_high=None,
            basis="none", outcome="not measured", note=f"{' and '.join(missing)} did not measure it",
        )  # fmt: skip
    measured_a = [float(v) for v in va if v is not None]  # all of them (none missing)
    measured_b = [float(v) for v in vb if v is not None]
    row = _exact_row if metric.exact else _ci_row
    return row(metric, measured_a, measured_b)


def _stack_unit_us(side: Side) -> float | None:
    """Median over the side's trials of the host-speed probe's unit time beside the stack."""
    units = [
        u for t in side.trials if (u := stack_unit_us(t.summary.get("host_speed"))) is not None
    ]
    return float(statistics.median(units)) if units else None


def _spread(x: float | None, y: float | None) -> float | None:
    """How many times the larger of two positive measures is the smaller; None if one is missing."""
    if x is None or y is None or x <= 0 or y <= 0:
        return None
    return max(x, y) / min(x, y)


def host_difference(a: Side, b: Side) -> str | None:
    """One line when the host's CPU ran at a different speed under A and B (flashlab.lab.hostspeed):
    a timing difference up to that factor may be the host's, not the design's."""
    ua, ub = _stack_unit_us(a), _stack_unit_us(b)
    factor = _spread(ua, ub)
    if ua is None or ub is None or factor is None or factor <= HOST_SPREAD_STEADY:
        return None
    slower = "B" if ub > ua else "A"
    return (
        f"host CPU: {slower}'s runs saw a {factor:.2f}x slower host (probe {ua:.0f} vs {ub:.0f} us);"
        " timing differences up to that factor may be the host's, not the design's"
    )


def _buy_rps(side: Side) -> float | None:
    """Median over the side's trials of the capacity probe's purchase rate (capacity.buy_rps)."""
    rates = [
        float(r)
        for t in side.trials
        if isinstance(r := (t.summary.get("capacity") or {}).get("buy_rps"), int | float)
    ]
    return float(statistics.median(rates)) if rates else None


def capacity_difference(a: Side, b: Side) -> str | None:
    """One line when A's and B's runs measured different machine capacities (capacity.buy_rps):
    their absolute timings then differ by the machine too; the relative rows do not."""
    ra, rb = _buy_rps(a), _buy_rps(b)
    factor = _spread(ra, rb)
    if ra is None or rb is None or factor is None or factor <= HOST_SPREAD_STEADY:
        return None
    return (
        f"capacity: A's runs measured {ra:,.0f} purchases/s, B's {rb:,.0f} (x{factor:.2f}); "
        "read the relative rows (p99 / ideal drain, throughput / buy capacity) across machines"
    )


def compare(a_path: Path | str, b_path: Path | str, *, force: bool = False) -> Comparison:
    """Compare baseline A with candidate B. Raises RunDirError (incl. ComparisonError) on bad input."""
    a, b = load_side(a_path), load_side(b_path)
    identity, context = differences(a.experiment, b.experiment)
    if identity and not force:
        raise ComparisonError(
            f"{a.path} and {b.path} are different experiments ({'; '.join(identity)}); "
            "pass --force to compare them anyway"
        )
    rows = [metric_row(metric, a, b) for metric in KEY_METRICS]
    notes = [line for line in (host_difference(a, b), capacity_difference(a, b)) if line]
    return Comparison(a, b, rows, identity + context + notes, force)


__all__ = [
    "COMPARE_HTML",
    "Comparison",
    "ComparisonError",
    "MetricRow",
    "Side",
    "TrialSetError",
    "compare",
    "differences",
    "load_side",
]
