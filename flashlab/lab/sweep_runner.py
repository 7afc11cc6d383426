"""Running a parameter sweep: a grid of experiments over dotted fields, cell by cell on shared stacks.

`flashlab sweep EXPERIMENT --set product.settings.naive_delay_ms=0,1,2 --set scenario.shoppers=500,2000`
plans the cartesian product of the `--set` values. Every cell is validated through the Experiment
model before anything runs (bad path or value -> UserError naming the `--set`). Cells that need
the same stack (same `stack`, `isolation` and fault proxy) run on ONE stack
(`flashlab.lab.stacks.shared_stack`); each cell is a complete run directory (`--repeat 1`) or a
trial set (`--repeat N`, flashlab.lab.trials). The sweep directory:

    <sweep>/sweep.json      the sweep manifest: base experiment, sets, cells; `complete: true` last
    <sweep>/cell-01/ ...    each cell's run directory or trial set
    <sweep>/sweep.parquet   one row per cell (flashlab.analysis.outputs)
    <sweep>/sweep.html      a plot per metric against the swept value(s)

Judging and rendering are flashlab.analysis.sweep_results's job (it reads the directory only).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import secrets
from collections.abc import Callable
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from flashlab.analysis.outputs import write_sweep_outputs
from flashlab.analysis.sweep_results import SWEEP_MANIFEST
from flashlab.analysis.sweep_results import cell_name
from flashlab.chaos.faults import needs_proxy
from flashlab.core import rundir
from flashlab.core.errors import UserError
from flashlab.core.provenance import provenance
from flashlab.lab.events import Announcer
from flashlab.lab.events import NotesToStderr
from flashlab.lab.events import Phase
from flashlab.lab.events import RunEvents
from flashlab.lab.experiment import Experiment
from flashlab.lab.experiment import ExperimentError
from flashlab.lab.experiment import parse_experiment
from flashlab.lab.outcome import RunOutcome
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute
from flashlab.lab.stacks import shared_stack
from flashlab.lab.trials import TrialSetRequest
from flashlab.lab.trials import check_repeat
from flashlab.lab.trials import run_trials
from flashlab.system.strategies import STRATEGIES
from flashlab.system.strategies import settings_model

MAX_CELLS = 50  # more needs --yes: a sweep of hundreds of runs is rarely meant


@dataclass(frozen=True)
class SetSpec:
    """One `--set PATH=V1,V2,...`: a dotted experiment field and the values it takes."""

    path: str
    values: tuple[Any, ...]


@dataclass
class Cell:
    index: int  # 1-based
    values: dict[str, Any]  # set path -> value
    experiment: Experiment

    @property
    def name(self) -> str:
        return cell_name(self.index)


@dataclass
class SweepRequest:
    experiment: Experiment
    sets: list[SetSpec]
    repeat: int = 1
    out_root: Path = Path("reports")
    sweep_dir: Path | None = None  # exact directory (--out); default out_root/<sweep-id>
    yes: bool = False  # allow more than MAX_CELLS cells
    write_report: bool = True
    # Listeners of the sweep's phases and of every cell's run (flashlab.lab.events).
    events: list[RunEvents] = field(default_factory=lambda: [NotesToStderr()])
    on_cell_start: Callable[[Cell, int], None] = lambda _cell, _n: None
    on_cell_done: Callable[[Cell, str | None], None] = lambda _cell, _verdict: None


@dataclass
class SweepOutcome:
    sweep_dir: Path
    cells: list[dict[str, Any]] = field(default_factory=list)  # sweep.json's cells


def _scalar(text: str) -> Any:
    """A `--set` value as YAML reads it (2 -> int, 0.5 -> float, true -> bool, aof-always -> str)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_set(text: str) -> SetSpec:
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path or not raw.strip():
        raise UserError(
            f"--set {text!r}: expected PATH=V1,V2,... (e.g. scenario.shoppers=500,2000)"
        )
    values = tuple(_scalar(v.strip()) for v in raw.split(",") if v.strip())
    return SetSpec(path, values)


def _leaves(node: Any, prefix: str = "") -> list[str]:
    """Every dotted path into a model dump: mappings by key, lists by index."""
    items: Iterable[tuple[str, Any]]
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return [prefix]
    out = [prefix] if prefix else []
    for key, value in items:
        out += _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def valid_paths(exp: Experiment) -> list[str]:
    """The dotted fields a sweep may set: the experiment's own, plus every strategy setting."""
    paths = set(_leaves(exp.model_dump(mode="json")))
    for strategy in STRATEGIES:
        paths |= {f"product.settings.{f}" for f in settings_model(strategy).model_fields}
    return sorted(paths)


def check_path(path: str, exp: Experiment) -> None:
    known = valid_paths(exp)
    if path in known:
        return
    near = difflib.get_close_matches(path, known, n=1, cutoff=0.5)
    hint = f"did you mean {near[0]!r}?" if near else "see `flashlab schema experiment`"
    raise UserError(f"--set {path}: unknown experiment field ({hint})")


def _with_value(data: dict[str, Any], path: str, value: Any) -> None:
    node: Any = data
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


def plan_cells(exp: Experiment, sets: list[SetSpec], yes: bool = False) -> list[Cell]:
    """The grid, every cell validated through the Experiment model (UserError names the --set)."""
    if not sets:
        raise UserError("--set: give at least one PATH=V1,V2,... to sweep over")
    paths = [s.path for s in sets]
    if len(set(paths)) != len(paths):
        raise UserError(f"--set: a path is given twice ({', '.join(paths)})")
    for spec in sets:
        check_path(spec.path, exp)
    total = 1
    for spec in sets:
        total *= len(spec.values)
    if total > MAX_CELLS and not yes:
        raise UserError(f"--set: {total} cells is more than {MAX_CELLS}; pass --yes to run them")
    base = exp.model_dump(mode="json")
    cells = []
    for index, combo in enumerate(itertools.product(*(s.values for s in sets)), 1):
        data = copy.deepcopy(base)
        for spec, value in zip(sets, combo, strict=True):
            _with_value(data, spec.path, value)
        try:
            cell_exp = parse_experiment(data, "experiment")
        except ExperimentError as exc:
            what = ", ".join(f"{s.path}={v}" for s, v in zip(sets, combo, strict=True))
            raise UserError(f"--set {what}: {str(exc).removeprefix('experiment: ')}") from None
        cells.append(Cell(index, dict(zip(paths, combo, strict=True)), cell_exp))
    return cells


def stack_key(exp: Experiment) -> str:
    """Cells with equal keys can share a stack: what the stack is started with."""
    proxy = needs_proxy([f.fault for f in exp.faults])
    parts = [exp.stack.model_dump(mode="json"), exp.isolation.model_dump(mode="json"), proxy]
    return json.dumps(parts, sort_keys=True)


def stack_groups(cells: list[Cell]) -> list[list[Cell]]:
    """Cells grouped by stack, in order of first appearance."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(stack_key(cell.experiment), []).append(cell)
    return list(groups.values())


def new_sweep_id(exp: Experiment) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{exp.name}-sweep-{secrets.token_hex(2)}"


def _manifest(req: SweepRequest, sweep_id: str, cells: list[Cell]) -> dict[str, Any]:
    groups = stack_groups(cells)
    group_of = {c.index: g for g, members in enumerate(groups, 1) for c in members}
    return {
        "kind": "sweep",
        "sweep_id": sweep_id,
        "complete": False,
        "repeat": req.repeat,
        "sets": [{"path": s.path, "values": list(s.values)} for s in req.sets],
        "stacks": len(groups),
        "cells": [
            {
                "name": c.name,
                "values": c.values,
                "kind": "trial-set" if req.repeat > 1 else "run",
                "stack": group_of[c.index],
                "done": False,
            }
            for c in cells
        ],
        **provenance(req.experiment.model_dump(mode="json")),
    }


def run_sweep(req: SweepRequest) -> SweepOutcome:
    """Plan, run every cell, write sweep.parquet/html, flip `complete` last.

    Raises UserError for bad input before anything runs; anything else propagates, leaving
    sweep.json `complete: false` with the error."""
    check_repeat(req.repeat)
    cells = plan_cells(req.experiment, req.sets, req.yes)
    sweep_id = new_sweep_id(req.experiment)
    sweep_dir = req.sweep_dir or (req.out_root / sweep_id)
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise UserError(f"--out: {sweep_dir} already exists and is not empty")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(req, sweep_id, cells)
    path = sweep_dir / SWEEP_MANIFEST
    rundir.write_json_atomic(path, manifest)
    try:
        for group in stack_groups(cells):
            _run_group(req, sweep_dir, manifest, group, len(cells))
        with Announcer(req.events).phase(Phase("judge-sweep", "judging the sweep")):
            write_sweep_outputs(sweep_dir, require_complete=False)
    except BaseException as exc:
        manifest["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        manifest["finished_at"] = datetime.now(UTC).isoformat()
        rundir.write_json_atomic(path, manifest)
        raise
    manifest["finished_at"] = datetime.now(UTC).isoformat()
    manifest["complete"] = True
    rundir.write_json_atomic(path, manifest)
    return SweepOutcome(sweep_dir, manifest["cells"])


def _run_group(
    req: SweepRequest, sweep_dir: Path, manifest: dict[str, Any], group: list[Cell], total: int
) -> None:
    events = Announcer(req.events)
    with ExitStack() as scope:
        label = f"starting a stack for {len(group)} cell(s)"
        with events.phase(Phase("shared-stack", label)):
            stack = scope.enter_context(shared_stack(group[0].experiment, None))
        for cell in group:
            req.on_cell_start(cell, total)
            extra = {"sweep": {"sweep_id": manifest["sweep_id"], "cell": cell.name}}
            verdict = _run_cell(req, sweep_dir / cell.name, cell, stack, extra)
            entry = manifest["cells"][cell.index - 1]
            entry["done"], entry["verdict"] = True, verdict
            rundir.write_json_atomic(sweep_dir / SWEEP_MANIFEST, manifest)
            req.on_cell_done(cell, verdict)


def _run_cell(
    req: SweepRequest, out: Path, cell: Cell, stack: Any, extra: dict[str, Any]
) -> str | None:
    if req.repeat > 1:
        set_req = TrialSetRequest(
            experiment=cell.experiment,
            repeat=req.repeat,
            set_dir=out,
            write_report=req.write_report,
            events=req.events,
        )
        return run_trials(set_req, stack=stack).result.get("verdict")
    run_req = RunRequest(
        experiment=cell.experiment,
        run_dir=out,
        write_report=req.write_report,
        events=req.events,
        manifest_extra=extra,
    )
    outcome: RunOutcome = execute(run_req, stack=stack)
    return outcome.summary.get("verdict")
