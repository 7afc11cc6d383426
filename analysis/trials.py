"""Trial sets: the directory format of repeated trials, their key metrics with CIs, and the set's verdict.

`flashlab run EXPERIMENT --repeat N` writes a trial-set directory:

    <set>/trialset.json     the set manifest: experiment, repeat, seeds, trial names;
                            `complete: true` is written last (like a run's manifest.json)
    <set>/trial-01/ ...     each trial's complete run directory (seed = base seed + i - 1)
    <set>/trials.parquet    one row per trial: trial, name, seed, verdict, one column per metric
    <set>/trials.json       median and 95% CI per key metric, the set's hypothesis
                            results, verdict and verdict_reasons
    <set>/trials.html       the same, self-contained (report styling, inline plot)

The set's verdict (`judge_set`), clause by clause over the trials' own results:
- safety clause: "fail" if it failed in any trial, else "pass";
- timing clause: "inconclusive" if any trial could not judge it (untrusted measurement);
  "fail" if any trial did not measure it; else it is judged on the CI of the median across
  trials: "pass" when every value in the interval satisfies it (for `p99 < 800` the upper bound
  is < 800; for `throughput_rps > X` the lower bound is > X), "fail" when no value does, and
  "inconclusive" when the interval straddles the threshold. A relative clause (`p99 < 1.5 *
  ideal.drain_ms`) is judged the same way on each trial's ratio (p99 / ideal.drain_ms) against
  its factor (1.5): each trial is measured against its own machine's capacity.
- an aborted trial fails the set. Then any fail -> "fail"; else any inconclusive -> "inconclusive".

Everything here reads directories only: doing lives in flashlab.lab.trials, and
flashlab.analysis.outputs writes the three set files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal

import pandas as pd

from flashlab.analysis import hypothesis
from flashlab.analysis import intervals
from flashlab.analysis.plots import summary_value
from flashlab.analysis.summary import aborted_reason
from flashlab.analysis.summary import ensure_summary
from flashlab.analysis.summary import json_safe
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import RunDirError

SET_MANIFEST = "trialset.json"
TRIALS_PARQUET = "trials.parquet"
TRIALS_JSON = "trials.json"
TRIALS_HTML = "trials.html"
SEED_RULE = "trial i (1-based) runs with seed = experiment seed + i - 1"

Better = Literal["lower", "higher", "neither"]


@dataclass(frozen=True)
class Metric:
    """A key metric of a run: its short name (flags, columns), where it is in summary.json, and
    which direction is better. `exact`: an anomaly count, a fact of the run, not a noisy sample."""

    name: str
    path: str
    better: Better
    label: str
    exact: bool = False


# The key metrics of trials.parquet/trials.json and `flashlab compare` (one registry for both).
KEY_METRICS: tuple[Metric, ...] = (
    Metric("p50", "latency_ms.p50", "lower", "response p50"),
    Metric("p95", "latency_ms.p95", "lower", "response p95"),
    Metric("p99", "latency_ms.p99", "lower", "response p99"),
    Metric("service_p99", "service_latency_ms.p99", "lower", "service p99"),
    Metric("throughput", "throughput_rps", "higher", "throughput"),
    Metric("duration", "duration_s", "lower", "load duration"),
    Metric("sellout", "sellout_s", "lower", "sell-out"),
    Metric("conflict_rate", "conflict_rate", "lower", "conflict rate (409)"),
    Metric("error_rate", "error_rate", "lower", "error rate"),
    Metric("generator_lag_p99", "generator.lag_ms_p99", "lower", "generator loop lag p99"),
    Metric("oversell", "oversell", "lower", "oversell", exact=True),
    Metric("lost_acknowledged", "lost_acknowledged", "lower", "lost acknowledged", exact=True),
    Metric("duplicate_purchases", "duplicate_purchases", "lower", "duplicates", exact=True),
    Metric("phantom_orders", "phantom_orders", "lower", "phantom orders", exact=True),
    Metric("server_error_rate", "server_error_rate", "lower", "5xx (not 503) rate", exact=True),
    # Timing over the machine's capacity, probed in each run (flashlab.analysis.capacity): what a
    # relative clause judges, comparable across machines.
    Metric("p99_over_drain", "relative.p99_over_drain", "lower", "p99 / ideal drain"),
    Metric(
        "throughput_over_buy", "relative.throughput_over_buy", "higher", "throughput / buy capacity"
    ),
    Metric("sellout_over_ideal", "relative.sellout_over_ideal", "lower", "sell-out / ideal"),
)
METRICS_BY_NAME = {m.name: m for m in KEY_METRICS}


def profile_metrics(trials: list[Trial]) -> tuple[Metric, ...]:
    """Each behaviour profile's share of the units (`<profile>_unit_share`), for every profile
    any trial's fairness lists: "do the bots take more than their share?" with a CI. Neither
    direction is better (a bot's share falling is a human's rising), so compare skips them."""
    names = sorted(
        {
            str(name)
            for t in trials
            for name in ((t.summary.get("fairness") or {}).get("profiles") or {})
        }
    )
    return tuple(
        Metric(
            f"{name}_unit_share",
            f"fairness.profiles.{name}.unit_share",
            "neither",
            f"{name} share of units",
        )
        for name in names
    )


class TrialSetError(RunDirError):
    """A trial set that is missing, incomplete, or has a missing or incomplete trial."""


@dataclass
class Trial:
    index: int  # 1-based
    name: str  # directory name inside the set
    seed: int | None
    summary: dict[str, Any]


@dataclass
class TrialSet:
    path: Path
    manifest: dict[str, Any]
    trials: list[Trial]

    @property
    def experiment(self) -> dict[str, Any]:
        return self.manifest.get("experiment") or {}


def is_trial_set(path: Path | str) -> bool:
    return (Path(path) / SET_MANIFEST).is_file()


def trial_name(index: int) -> str:
    """Directory name of trial `index` (1-based): trial-01, trial-02, ..."""
    return f"trial-{index:02d}"


def trial_seed(base_seed: int, index: int) -> int:
    """See SEED_RULE: trial 1 is the single run of the same file, later trials differ."""
    return base_seed + index - 1


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrialSetError(f"{path.parent}: missing {path.name} ({what})") from None
    except json.JSONDecodeError as exc:
        raise TrialSetError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise TrialSetError(f"{path}: expected a JSON object")
    return data


def _load_trial(set_dir: Path, index: int, name: str, seed: int | None) -> Trial:
    run_dir = set_dir / name
    if not run_dir.is_dir():
        raise TrialSetError(f"{set_dir}: trial {name} is missing")
    manifest = _read_json(run_dir / MANIFEST, "trial manifest")
    if not manifest.get("complete"):
        raise TrialSetError(f"{set_dir}: trial {name} is incomplete (no complete=true)")
    return Trial(index, name, seed, ensure_summary(run_dir))


def load_set(path: Path | str, *, require_complete: bool = True) -> TrialSet:
    """Read a trial set; refuses (TrialSetError, one line) a missing or incomplete trial."""
    path = Path(path)
    if not path.is_dir():
        raise TrialSetError(f"{path}: not a directory")
    manifest = _read_json(path / SET_MANIFEST, "not a trial set")
    if require_complete and not manifest.get("complete"):
        raise TrialSetError(
            f"{path}: trial set is incomplete ({SET_MANIFEST} has no complete=true)"
        )
    names = list(manifest.get("trials") or [])
    seeds = list(manifest.get("seeds") or [])
    repeat = int(manifest.get("repeat") or len(names))
    if len(names) < repeat:
        raise TrialSetError(f"{path}: has {len(names)} of {repeat} trials")
    trials = [
        _load_trial(path, i + 1, name, seeds[i] if i < len(seeds) else None)
        for i, name in enumerate(names)
    ]
    return TrialSet(path, manifest, trials)


# --- the set's numbers --------------------------------------------------------------------------


def metric_values(trials: list[Trial], metric: Metric) -> list[float | None]:
    values = [summary_value(t.summary, metric.path) for t in trials]
    return [None if v is None else float(v) for v in values]


def metric_intervals(trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """Per key metric: its path, direction, the per-trial values, median and CI."""
    out = {}
    for metric in (*KEY_METRICS, *profile_metrics(trials)):
        values = metric_values(trials, metric)
        ci = intervals.median_ci(values)
        out[metric.name] = {
            "path": metric.path,
            "label": metric.label,
            "better": metric.better,
            "values": values,
            "median": ci.median,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "n": ci.n,
        }
    return out


def trial_rows(trials: list[Trial]) -> pd.DataFrame:
    """trials.parquet: one row per trial, its verdict and every key metric."""
    rows = []
    metrics = (*KEY_METRICS, *profile_metrics(trials))
    for t in trials:
        row: dict[str, Any] = {
            "trial": t.index,
            "name": t.name,
            "seed": t.seed,
            "run_id": t.summary.get("run_id"),
            "verdict": t.summary.get("verdict"),
        }
        for metric in metrics:
            value = summary_value(t.summary, metric.path)
            row[metric.name] = None if value is None else float(value)
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.astype({m.name: "float64" for m in metrics})


# --- the set's verdict ----------------------------------------------------------------------------

# (every value in [low, high] satisfies, no value in [low, high] satisfies), per operator.
_INTERVAL_RULES = {
    "<": (lambda lo, hi, t: hi < t, lambda lo, hi, t: lo >= t),
    "<=": (lambda lo, hi, t: hi <= t, lambda lo, hi, t: lo > t),
    ">": (lambda lo, hi, t: lo > t, lambda lo, hi, t: hi <= t),
    ">=": (lambda lo, hi, t: lo >= t, lambda lo, hi, t: hi < t),
    "==": (lambda lo, hi, t: lo == hi == t, lambda lo, hi, t: not lo <= t <= hi),
    "!=": (lambda lo, hi, t: not lo <= t <= hi, lambda lo, hi, t: lo == hi == t),
}


def decide_on_interval(op: str, threshold: float, low: float, high: float) -> str:
    """ "pass" if the whole interval satisfies `<value> op threshold`, "fail" if none of it does,
    else "inconclusive" (the interval straddles the threshold)."""
    every, none = _INTERVAL_RULES[op]
    if every(low, high, threshold):
        return "pass"
    return "fail" if none(low, high, threshold) else "inconclusive"


def _trial_results(trials: list[Trial], text: str) -> list[tuple[Trial, dict[str, Any]]]:
    out = []
    for t in trials:
        found = next(
            (c for c in t.summary.get("hypothesis") or [] if c.get("clause") == text), None
        )
        if found is None:
            raise TrialSetError(f"trial {t.name}: its summary has no clause {text!r}")
        out.append((t, found))
    return out


def _names(pairs: list[tuple[Trial, dict[str, Any]]]) -> str:
    return ", ".join(str(t.index) for t, _ in pairs)


def _status(result: dict[str, Any]) -> str:
    """A trial's clause status (runs from before three-valued verdicts have only `ok`)."""
    return result.get("status") or ("pass" if result["ok"] else "fail")


def _judge_safety(base: dict[str, Any], results: list[tuple[Trial, dict[str, Any]]]) -> dict:
    failed = [(t, r) for t, r in results if _status(r) == "fail"]
    if not failed:
        return base | {"status": "pass"}
    measured = ", ".join("—" if r["measured"] is None else f"{r['measured']:g}" for _, r in failed)
    return base | {
        "status": "fail",
        "reason": f"failed in trial(s) {_names(failed)} (measured {measured})",
    }


def _judge_timing(base: dict[str, Any], results: list[tuple[Trial, dict[str, Any]]]) -> dict:
    untrusted = [(t, r) for t, r in results if _status(r) == "inconclusive"]
    if untrusted:
        why = untrusted[0][1].get("reason") or "untrusted measurement"
        return base | {
            "status": "inconclusive",
            "reason": f"untrusted in trial(s) {_names(untrusted)}: {why}",
        }
    unmeasured = [(t, r) for t, r in results if r["measured"] is None]
    if unmeasured:
        return base | {"status": "fail", "reason": f"not measured in trial(s) {_names(unmeasured)}"}
    # A relative clause is judged on the ratio measured / reference, trial by trial, against its
    # factor: each trial's machine is its own yardstick.
    relative = base.get("ref") is not None
    values = [_ratio(r) if relative else r["measured"] for _, r in results]
    ci = intervals.median_ci(values)
    base = base | {"median": ci.median, "ci_low": ci.low, "ci_high": ci.high}
    if ci.low is None or ci.high is None:  # a single trial: no interval, judge the value
        status = "pass" if results[0][1]["ok"] else "fail"
        return base | {"status": status, "reason": None if status == "pass" else "single trial"}
    status = decide_on_interval(base["op"], base["expected"], ci.low, ci.high)
    of = f" of {base['key']} / {base['ref']}" if relative else ""
    interval = f"median{of} {ci.median:g}, 95% CI [{ci.low:g}, {ci.high:g}]"
    reason = {
        "pass": None,
        "fail": f"{interval} is entirely on the wrong side of {base['expected']:g}",
        "inconclusive": f"{interval} straddles {base['expected']:g}",
    }[status]
    return base | {"status": status, "reason": reason}


def _ratio(result: dict[str, Any]) -> float | None:
    """A trial's measured / reference for a relative clause (None when either is missing)."""
    if result.get("ratio") is not None:
        return float(result["ratio"])
    measured, ref = result.get("measured"), result.get("ref_value")
    return measured / ref if measured is not None and ref else None


def judge_clause(text: str, trials: list[Trial]) -> dict[str, Any]:
    """The set's result for one clause: status, reason, and for timing clauses the interval (of
    the value; of the ratio value / reference for a relative clause, `expected` its factor)."""
    clause = hypothesis.parse_clause(text)
    results = _trial_results(trials, text)
    base = {
        "clause": clause.text,
        "key": clause.key,
        "op": clause.op,
        "expected": clause.value,
        "class": hypothesis.clause_class(clause.key),
        "trials": [_status(r) for _, r in results],
        "measured": [r.get("measured") for _, r in results],
    }
    if clause.ref is not None:
        base |= {"ref": clause.ref, "ratios": [_ratio(r) for _, r in results]}
    judge = _judge_safety if base["class"] == "safety" else _judge_timing
    return {"reason": None} | judge(base, results)


def _set_reason(result: dict[str, Any]) -> str:
    return f"clause '{result['clause']}' {result['status']}: {result['reason']}"


def judge_set(
    clauses: list[str], trials: list[Trial]
) -> tuple[list[dict[str, Any]], str, list[str]]:
    """(per-clause set results, set verdict, reasons for a non-pass) - the rules in the module doc."""
    results = [judge_clause(text, trials) for text in clauses]
    reasons = [f"trial {t.index}: {why}" for t in trials if (why := _aborted(t.summary))]
    statuses = [r["status"] for r in results] + ["fail"] * len(reasons)
    reasons += [_set_reason(r) for r in results if r["status"] == "fail"]
    reasons += [_set_reason(r) for r in results if r["status"] == "inconclusive"]
    return results, hypothesis.overall(statuses), reasons


def _aborted(summary: dict[str, Any]) -> str | None:
    aborted = summary.get("aborted")
    if not isinstance(aborted, dict):
        return None
    return aborted_reason(aborted)


def summarize_set(trial_set: TrialSet) -> dict[str, Any]:
    """trials.json: what the set is, every trial, the key metrics with CIs, and the set's verdict."""
    exp = trial_set.experiment
    results, verdict, reasons = judge_set(list(exp.get("hypothesis") or []), trial_set.trials)
    return json_safe(
        {
            "set_id": trial_set.manifest.get("set_id", trial_set.path.name),
            "verdict": verdict,
            "verdict_reasons": reasons,
            "hypothesis": results,
            "experiment": exp.get("name"),
            "strategy": (exp.get("product") or {}).get("strategy"),
            "repeat": len(trial_set.trials),
            "seed_rule": SEED_RULE,
            "intervals": intervals.method(),
            "metrics": metric_intervals(trial_set.trials),
            "trials": [
                {
                    "trial": t.index,
                    "name": t.name,
                    "seed": t.seed,
                    "run_id": t.summary.get("run_id"),
                    "verdict": t.summary.get("verdict"),
                    "verdict_reasons": t.summary.get("verdict_reasons") or [],
                }
                for t in trial_set.trials
            ],
        }
    )
