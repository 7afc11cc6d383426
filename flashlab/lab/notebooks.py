"""The real runs the notebooks read: which runs each notebook needs, made once and cached, then the notebooks executed.

`make notebooks` runs `python -m flashlab.lab.notebooks`: for every notebook in NOTEBOOK_INPUTS it
makes the run directories (or the sweep) its parameters name, at a size that keeps the whole
set to a few minutes, under `<runs>/<name>-<key>` where the key hashes the experiment (after
overrides) and the code revision (commit, plus the non-doc diff when the tree is dirty). A complete
directory with that key is reused, so a second `make notebooks` only re-executes the notebooks.
Each directory gets a `notebook-run.json` (spec, revision, key): a notebook opened by hand in
Jupyter finds the newest complete one per spec name (flashlab.analysis.notebook_runs) and says
which revision made it. Then it executes each notebook with papermill
(flashlab.analysis.notebooks), the paths injected as RUN_DIRS / SWEEP_DIR and SYNTHETIC=False
(a missing run stops the notebook; it never falls back to a stand-in), and renders HTML.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from flashlab.analysis.notebook_runs import is_complete
from flashlab.analysis.notebook_runs import write_sidecar
from flashlab.analysis.notebooks import NOTEBOOKS_DIR
from flashlab.analysis.notebooks import ROOT
from flashlab.analysis.notebooks import NotebookError
from flashlab.analysis.notebooks import execute_notebook
from flashlab.analysis.notebooks import notebook_paths
from flashlab.core.errors import EXIT_BAD_INPUT
from flashlab.core.errors import EXIT_INFRA
from flashlab.core.errors import EXIT_OK
from flashlab.core.errors import UserError
from flashlab.lab.experiment import Experiment
from flashlab.lab.experiment import ExperimentError
from flashlab.lab.experiment import load_experiment

DEFAULT_RUNS = ROOT / "reports" / "notebook-runs"


@dataclass(frozen=True)
class RunSpec:
    """One run a notebook reads: an experiment file and dotted overrides (sized for minutes)."""

    name: str
    experiment: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    """One sweep a notebook reads: `flashlab sweep EXPERIMENT --set ...` as a spec."""

    name: str
    experiment: str
    sets: tuple[str, ...]
    overrides: dict[str, Any] = field(default_factory=dict)


def _spike(shoppers: int, stock: int) -> dict[str, Any]:
    return {"scenario.shoppers": shoppers, "product.stock": stock}


NAIVE = RunSpec("seed-phase1-naive", "experiments/seed-phase1-naive.yaml", _spike(2000, 200))
LOCK = RunSpec("seed-phase2-lock", "experiments/seed-phase2-lock.yaml", _spike(2000, 200))
LUA = RunSpec("lua", "experiments/lua.yaml", _spike(2000, 200))
OPTIMISTIC = RunSpec("optimistic", "experiments/optimistic.yaml", _spike(2000, 200))


def _redis_kill(durability: str) -> RunSpec:
    return RunSpec(f"lua-redis-kill-{durability}", f"experiments/redis-kill-{durability}.yaml", {})


# Notebook stem -> its parameters: a RunSpec list becomes RUN_DIRS, a SweepSpec SWEEP_DIR.
NOTEBOOK_INPUTS: dict[str, dict[str, Any]] = {
    "01-oversell": {"RUN_DIRS": [NAIVE, LOCK, LUA, OPTIMISTIC]},
    "02-latency-percentiles": {"RUN_DIRS": [LUA, LOCK]},
    "03-conflict-rates": {
        "RUN_DIRS": [
            RunSpec("conflict-lock-1000", "experiments/seed-phase2-lock.yaml", _spike(1000, 300)),
            RunSpec("conflict-lock-3000", "experiments/seed-phase2-lock.yaml", _spike(3000, 300)),
            RunSpec("conflict-optimistic-3000", "experiments/optimistic.yaml", _spike(3000, 300)),
        ]
    },
    "04-chaos-recovery": {
        "RUN_DIRS": [_redis_kill(d) for d in ("none", "aof-everysec", "aof-always")]
    },
    "05-race-window": {
        "SWEEP_DIR": SweepSpec(
            "race-window",
            "experiments/race-window.yaml",
            ("product.settings.naive_delay_ms=0,1,2,5,10", "scenario.shoppers=200,800"),
        )
    },
}


def code_revision(root: Path = ROOT) -> str:
    """The commit, plus a digest of the uncommitted diff: runs made by other code are not reused."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD").strip() or "unknown"
    diff = git(
        "diff", "HEAD", "--", ".", ":(exclude)notebooks", ":(exclude)reports", ":(exclude)*.md"
    )
    return commit + ("+" + hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else "")


def _experiment(spec: RunSpec | SweepSpec) -> Experiment:
    try:
        return load_experiment(ROOT / spec.experiment, spec.overrides)
    except ExperimentError as exc:
        raise UserError(str(exc)) from None


def cache_key(spec: RunSpec | SweepSpec, revision: str) -> str:
    exp = _experiment(spec).model_dump(mode="json")
    sets = list(spec.sets) if isinstance(spec, SweepSpec) else []
    text = json.dumps({"experiment": exp, "sets": sets, "revision": revision}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure(spec: RunSpec | SweepSpec, runs_dir: Path, revision: str) -> Path:
    """The spec's directory under `runs_dir`: reused when complete, else (re)made now."""
    key = cache_key(spec, revision)
    path = runs_dir / f"{spec.name}-{key}"
    if is_complete(path):
        write_sidecar(path, spec.name, revision, key)  # runs cached before sidecars get one too
        print(f"{spec.name}: cached {path}")
        return path
    if path.exists():  # an interrupted earlier attempt: start it again
        shutil.rmtree(path)
    started = time.monotonic()
    if isinstance(spec, SweepSpec):
        # start-up cost: only this path pays for httpx, rich
        from flashlab.lab.sweep_runner import SweepRequest
        from flashlab.lab.sweep_runner import parse_set
        from flashlab.lab.sweep_runner import run_sweep

        sets = [parse_set(text) for text in spec.sets]
        request = SweepRequest(_experiment(spec), sets, sweep_dir=path, write_report=False)
        run_sweep(request)
    else:
        # start-up cost: only this path pays for httpx, rich
        from flashlab.lab.run import RunRequest
        from flashlab.lab.run import execute

        # No report.html: the notebooks read the run files, and the plots cost seconds per run.
        execute(RunRequest(_experiment(spec), run_dir=path, write_report=False, events=[]))
    write_sidecar(path, spec.name, revision, key)
    print(f"{spec.name}: made {path} in {time.monotonic() - started:.1f} s")
    return path


def notebook_params(stem: str, runs_dir: Path, revision: str) -> dict[str, Any]:
    """The notebook's parameters with every run made (or found in the cache)."""
    params: dict[str, Any] = {}
    for name, value in NOTEBOOK_INPUTS.get(stem, {}).items():
        if isinstance(value, list):
            params[name] = [str(ensure(spec, runs_dir, revision)) for spec in value]
        else:
            params[name] = str(ensure(value, runs_dir, revision))
    return params


def render(stem: str, runs_dir: Path, out_dir: Path, revision: str) -> Path:
    """Make the notebook's runs, execute it on them, write `<out_dir>/<stem>.html`."""
    # SYNTHETIC=False: a missing run stops the notebook (NoRuns), whatever FLASHLAB_SYNTHETIC says.
    params = notebook_params(stem, runs_dir, revision) | {"SYNTHETIC": False}
    out = out_dir / f"{stem}.html"
    execute_notebook(NOTEBOOKS_DIR / f"{stem}.ipynb", params, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flashlab.lab.notebooks",
        description="Make (or reuse) the real runs the notebooks read, then execute and render them.",
        epilog="Example: python -m flashlab.lab.notebooks --out reports/notebooks --only 05-race-window",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "notebooks")
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="the run cache")
    parser.add_argument("--only", action="append", default=[], help="notebook stem, repeatable")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        paths = notebook_paths(args.only)
        revision = code_revision()
        for path in paths:
            out = render(path.stem, args.runs, args.out, revision)
            print(f"{path.name} -> {out}")
    except (NotebookError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, UserError) or "--only" in str(exc) else 1
    except Exception as exc:  # a run could not be made: infrastructure, one line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INFRA
    print(f"{len(paths)} notebook(s) rendered in {time.monotonic() - started:.1f} s")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
