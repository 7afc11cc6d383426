"""Benchmarks made of whole lab runs: an experiment executed into a temp directory, read back.

`flashlab.lab.run.execute` writes it; the history, faults and summary are read back (shared by
`reference` and `chaos`)."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flashlab.analysis.hypothesis import parse_clause
from flashlab.core import rundir
from flashlab.lab.experiment import CAPACITY_OFF
from flashlab.lab.experiment import Experiment
from flashlab.lab.experiment import load_experiment
from flashlab.lab.experiment import parse_experiment


@dataclass
class LabRun:
    exp: Experiment
    exit_code: int
    summary: dict[str, Any]
    manifest: dict[str, Any]
    history: pd.DataFrame
    faults: pd.DataFrame


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def experiment_from(path: Path, changes: dict[str, Any]) -> Experiment:
    """The experiment file with nested `changes` merged in (dicts merge, everything else replaces).

    A benchmark measures its own ratios side by side, so its runs skip the capacity probe (about
    6 s, and load just before the measured run) unless a clause is bounded relative to it.
    """
    data = _merge(load_experiment(path).model_dump(mode="json"), changes)
    if "capacity" not in changes and not any(
        parse_clause(text).needs_capacity for text in data.get("hypothesis") or []
    ):
        data["capacity"] = CAPACITY_OFF
    return parse_experiment(data, str(path))


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def execute(exp: Experiment, out_root: Path, on: Any = None) -> LabRun:
    """Run `exp` into `out_root`: on its own stack, or `on` a running one (a StackInfo)."""
    # start-up cost: only this path pays for httpx, prometheus_client, rich
    from flashlab.lab.remote import Target
    from flashlab.lab.run import RunRequest
    from flashlab.lab.run import execute as run_execute

    target = None if on is None else Target(on.base_url, on.redis_url, on.admin_token)
    request = RunRequest(experiment=exp, out_root=out_root, target=target, write_report=False)
    outcome = run_execute(request)
    run = rundir.load_run(outcome.run_dir, require_complete=False)
    return LabRun(
        exp=exp,
        exit_code=outcome.exit_code,
        summary=outcome.summary,
        manifest=json.loads((outcome.run_dir / rundir.MANIFEST).read_text()),
        history=run.history,
        faults=run.faults,
    )
