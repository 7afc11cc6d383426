"""The results line every benchmark appends: machine facts, targets, ratios, JSON lines.

A benchmark measures several things side by side in one run and reports their RATIOS (absolute
numbers on a shared 2-core machine are noise). Each appends one JSON line to a results file.
"""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
import psutil

from flashlab.bench.context import REPO_ROOT
from flashlab.bench.context import BenchContext


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # how shared the machine was when we started
    }


def git_revision() -> dict[str, Any]:
    # start-up cost: only this path pays for importlib.metadata and subprocess
    from flashlab.core.provenance import git_revision as revision_of

    return revision_of(REPO_ROOT)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def target(value: float | None, op: Literal["<=", ">="], bound: float) -> dict[str, Any]:
    """A target and whether it was met (None when the value could not be measured)."""
    met = None if value is None else (value <= bound if op == "<=" else value >= bound)
    return {"value": value, "target": f"{op} {bound:g}", "met": met}


def ratio(num: float | None, den: float | None, digits: int = 3) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return None
    return round(num / den, digits)


def result_line(
    ctx: BenchContext,
    bench: str,
    started_at: str,
    params: dict[str, Any],
    raw: dict[str, Any],
    ratios: dict[str, Any],
    targets: dict[str, Any],
    plot: Path | None,
) -> dict[str, Any]:
    return {
        "bench": bench,
        "size": ctx.size,
        "command": ctx.command,
        "git_revision": git_revision(),
        "machine": machine(),
        "started_at": started_at,
        "finished_at": now_iso(),
        "params": params,
        "raw": raw,
        "ratios": ratios,
        "targets": targets,
        "all_targets_met": all(t.get("met") is True for t in targets.values()) if targets else None,
        "plot": _relative(plot) if plot else None,
    }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def append_result(path: Path, line: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(line, default=_json_default, sort_keys=False) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
