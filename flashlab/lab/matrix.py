"""The strategy x fault x durability matrix: expands a grid into experiments, runs each, writes matrix.json.

With `repeat` > 1 every cell is a trial set (flashlab.lab.trials) and carries the median and 95%
CI of p99 and throughput; its verdict is the set's (see flashlab.analysis.trials).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from flashlab.chaos.spec import FaultSpec
from flashlab.core.errors import EXIT_INCONCLUSIVE
from flashlab.core.errors import EXIT_INFRA
from flashlab.core.errors import EXIT_OK
from flashlab.core.errors import EXIT_VERDICT_FAIL
from flashlab.core.errors import verdict_unexpected
from flashlab.core.rundir import write_json_atomic
from flashlab.lab.experiment import Experiment
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute
from flashlab.system.strategies import strategy_class

NO_FAULT = "none"
# Faults that can lose acknowledged writes when Redis does not fsync every write.
_REDIS_LOSS_FAULTS = {"redis-kill", "redis-restart"}


@dataclass
class Cell:
    strategy: str
    fault: str
    durability: str
    expected: str  # "pass" | "fail" | "any"
    run_dir: str = ""
    verdict: str = "error"
    oversell: int | None = None
    lost_acknowledged: int | None = None
    duplicate_purchases: int | None = None
    p99_ms: float | None = None  # the median over the trials when repeat > 1
    conflict_rate: float | None = None
    repeat: int = 1
    p99_ci_low: float | None = None  # 95% CI of the median (repeat > 1)
    p99_ci_high: float | None = None
    throughput_rps: float | None = None
    throughput_ci_low: float | None = None
    throughput_ci_high: float | None = None
    wall_s: float | None = None
    error: str | None = None

    @property
    def unexpected(self) -> bool:
        return verdict_unexpected(self.verdict, self.expected)

    @property
    def inconclusive(self) -> bool:
        return self.verdict == "inconclusive"


# A matrix strategy `<name>+rl` is strategy <name> with the rate limit switched on: the base
# experiment's `product.rate_limit`, or this one when the base has none.
RATE_LIMITED = "+rl"
DEFAULT_RATE_LIMIT = {"per_user_rate_per_s": 5.0, "per_user_burst": 5}


def strategy_variants(names: list[str]) -> list[str]:
    """Every strategy, plain and with the rate limit (`lua`, `lua+rl`, ...): what --strategies takes."""
    return [*names, *(f"{n}{RATE_LIMITED}" for n in names)]


def expected_verdict(strategy: str, fault: str, durability: str) -> str:
    """What a correct lab should find: a strategy that is not `safe` (naive) oversells; Redis
    crashes may lose data unless AOF always."""
    if not strategy_class(strategy.removesuffix(RATE_LIMITED)).safe:
        return "fail"
    if fault in _REDIS_LOSS_FAULTS and durability != "aof-always":
        return "any"
    return "pass"


def cell_experiment(base: Experiment, strategy: str, fault: str, durability: str) -> Experiment:
    data = base.model_dump(mode="json")
    data["name"] = f"{strategy}-{fault}-{durability}"
    data["product"]["strategy"] = strategy.removesuffix(RATE_LIMITED)
    if strategy.endswith(RATE_LIMITED):
        data["product"]["rate_limit"] = data["product"].get("rate_limit") or DEFAULT_RATE_LIMIT
    data["stack"]["durability"] = durability
    data["faults"] = (
        []
        if fault == NO_FAULT
        else [
            FaultSpec(fault=fault, at_s=base_fault_at(base), duration_s=1.0).model_dump(mode="json")
        ]
    )
    return Experiment.model_validate(data)


def base_fault_at(base: Experiment) -> float:
    """Inject a third of the way into the arrival window, so there is a before, a during and an after."""
    arrival = base.scenario.arrival
    span = {"spike": "window_s", "ramp": "duration_s"}.get(arrival.kind)
    window = (
        getattr(arrival, span)
        if span
        else base.scenario.shoppers / getattr(arrival, "rate_per_s", 1000.0)
    )
    return round(max(0.3, window / 3), 2)


def run_matrix(
    base: Experiment,
    strategies: list[str],
    faults: list[str],
    durabilities: list[str],
    out_dir: Path,
    on_cell: Callable[[Cell, int, int], None] = lambda *_: None,
    repeat: int = 1,
) -> list[Cell]:
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = list(itertools.product(strategies, faults, durabilities))
    cells: list[Cell] = []
    for index, (strategy, fault, durability) in enumerate(grid):
        cell = Cell(strategy, fault, durability, expected_verdict(strategy, fault, durability))
        cell.repeat = repeat
        on_cell(cell, index, len(grid))
        started = time.monotonic()
        try:
            exp = cell_experiment(base, strategy, fault, durability)
            _run_cell(cell, exp, out_dir, repeat)
            cell.run_dir = exp.name
        except Exception as exc:  # one broken cell must not lose the rest of the grid
            cell.error = f"{type(exc).__name__}: {exc}"
        cell.wall_s = round(time.monotonic() - started, 2)
        cells.append(cell)
        write_matrix_json(out_dir, base, cells)
    return cells


def _run_cell(cell: Cell, exp: Experiment, out_dir: Path, repeat: int) -> None:
    if repeat <= 1:
        outcome = execute(RunRequest(experiment=exp, run_dir=out_dir / exp.name))
        _fill(cell, outcome.summary)
        return
    # start-up cost: only this path pays for matplotlib, jinja2
    from flashlab.lab.trials import TrialSetRequest
    from flashlab.lab.trials import run_trials

    result = run_trials(TrialSetRequest(experiment=exp, repeat=repeat, set_dir=out_dir / exp.name))
    _fill_set(cell, result.result)


def _fill_set(cell: Cell, result: dict[str, Any]) -> None:
    """A trial-set cell: the set's verdict, the worst trial's anomaly counts, medians and CIs."""
    metrics = result["metrics"]

    def worst(name: str) -> int | None:
        values = [v for v in metrics[name]["values"] if v is not None]
        return int(max(values)) if values else None

    cell.verdict = result["verdict"]
    cell.oversell = worst("oversell")
    cell.lost_acknowledged = worst("lost_acknowledged")
    cell.duplicate_purchases = worst("duplicate_purchases")
    cell.conflict_rate = metrics["conflict_rate"]["median"]
    p99, rps = metrics["p99"], metrics["throughput"]
    cell.p99_ms, cell.p99_ci_low, cell.p99_ci_high = p99["median"], p99["ci_low"], p99["ci_high"]
    cell.throughput_rps = rps["median"]
    cell.throughput_ci_low, cell.throughput_ci_high = rps["ci_low"], rps["ci_high"]


def matrix_exit_code(cells: list[Cell]) -> int:
    """1 if a cell that should not fail got another verdict than expected; else 4 if a cell could
    not run (infrastructure); else 3 if one was inconclusive; else 0. Naive cells that pass are
    surprises the table shows, but do not fail the grid."""
    gating = [c for c in cells if c.expected != "fail"]
    if any(c.unexpected and c.verdict in ("pass", "fail") for c in gating):
        return EXIT_VERDICT_FAIL
    if any(c.verdict == "error" for c in cells):
        return EXIT_INFRA
    if any(c.verdict == "inconclusive" for c in gating):
        return EXIT_INCONCLUSIVE
    return EXIT_OK


def _fill(cell: Cell, summary: dict[str, Any]) -> None:
    cell.verdict = summary["verdict"]
    cell.oversell = summary.get("oversell")
    cell.lost_acknowledged = summary.get("lost_acknowledged")
    cell.duplicate_purchases = summary.get("duplicate_purchases")
    cell.p99_ms = (summary.get("latency_ms") or {}).get("p99")
    cell.conflict_rate = summary.get("conflict_rate")
    cell.throughput_rps = summary.get("throughput_rps")


def write_matrix_json(out_dir: Path, base: Experiment, cells: list[Cell]) -> Path:
    path = out_dir / "matrix.json"
    write_json_atomic(
        path,
        {
            "written_at": datetime.now(UTC).isoformat(),
            "base": base.model_dump(mode="json"),
            "repeat": max((c.repeat for c in cells), default=1),
            "cells": [asdict(c) | {"unexpected": c.unexpected} for c in cells],
        },
    )
    return path
