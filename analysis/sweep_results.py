"""Reading a sweep directory: its manifest, and one row of key metrics per cell (sweep.parquet's).

A sweep (`flashlab sweep`, doing in flashlab.lab.sweep_runner) writes `sweep.json` (kind "sweep": the
base experiment, the `sets` swept, one entry per cell with its set values) and one run directory
(`--repeat 1`) or trial set (`--repeat N`) per cell. This module reads only those directories:

- `sweep_frame`: one row per cell: `cell`, one column per set path (the value it took), `verdict`,
  `n` (runs), and per metric in SWEEP_METRICS its value (the median over trials when repeated)
  with `<metric>_ci_low` / `<metric>_ci_high` (95% CI of the median, flashlab.analysis.intervals; null for one run).
- `plotted_metrics`: the metrics sweep.html plots against the swept value(s), CI error bars when
  repeated. flashlab.analysis.outputs writes sweep.parquet and (through flashlab.analysis.report)
  sweep.html.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from flashlab.analysis import intervals
from flashlab.analysis.plots import summary_value
from flashlab.analysis.summary import ensure_summary
from flashlab.analysis.trials import KEY_METRICS
from flashlab.analysis.trials import Metric
from flashlab.analysis.trials import is_trial_set
from flashlab.analysis.trials import load_set
from flashlab.core.rundir import MANIFEST
from flashlab.core.rundir import RunDirError
from flashlab.core.rundir import read_json

SWEEP_MANIFEST = "sweep.json"
SWEEP_PARQUET = "sweep.parquet"
SWEEP_HTML = "sweep.html"

# Key metrics plus what a sweep over the sale asks about. `undersold` and fairness come from the
# outcome checks; a metric no cell measured is left out of the plots (its column stays null).
SWEEP_METRICS: tuple[Metric, ...] = (
    Metric("sold", "sold", "higher", "units sold", exact=True),
    Metric("stock", "stock_initial", "higher", "stock", exact=True),
    *KEY_METRICS,
    Metric("service_p50", "service_latency_ms.p50", "lower", "service p50"),
    Metric("undersold", "undersold", "lower", "undersold", exact=True),
    Metric("fcfs_inversion_rate", "fairness.fcfs_inversion_rate", "lower", "FCFS inversion rate"),
)


class SweepError(RunDirError):
    """A sweep directory that is missing, incomplete, or has a missing or incomplete cell."""


def cell_name(index: int) -> str:
    """Directory name of cell `index` (1-based): cell-01, cell-02, ..."""
    return f"cell-{index:02d}"


def is_sweep(path: Path | str) -> bool:
    return (Path(path) / SWEEP_MANIFEST).is_file()


def load_manifest(sweep_dir: Path | str, *, require_complete: bool = True) -> dict[str, Any]:
    sweep_dir = Path(sweep_dir)
    try:
        manifest = read_json(sweep_dir / SWEEP_MANIFEST)
    except RunDirError as exc:
        raise SweepError(f"{sweep_dir}: not a sweep ({exc})") from None
    if require_complete and not manifest.get("complete"):
        raise SweepError(
            f"{sweep_dir}: sweep is incomplete ({SWEEP_MANIFEST} has no complete=true)"
        )
    return manifest


def _cell_summaries(cell_dir: Path) -> list[dict[str, Any]]:
    """The summaries of a cell: one for a run directory, one per trial for a trial set."""
    if is_trial_set(cell_dir):
        return [t.summary for t in load_set(cell_dir).trials]
    try:
        complete = json.loads((cell_dir / MANIFEST).read_text()).get("complete")
    except (OSError, ValueError):
        complete = False
    if not complete:
        raise SweepError(f"{cell_dir.parent}: cell {cell_dir.name} is missing or incomplete")
    return [ensure_summary(cell_dir)]


def _metric_columns(summaries: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric in SWEEP_METRICS:
        raw = [summary_value(s, metric.path) for s in summaries]
        values = [None if v is None else float(v) for v in raw]
        if len(values) == 1:
            out[metric.name], low, high = values[0], None, None
        else:
            ci = intervals.median_ci(values)
            out[metric.name], low, high = ci.median, ci.low, ci.high
        out[f"{metric.name}_ci_low"], out[f"{metric.name}_ci_high"] = low, high
    return out


def sweep_frame(sweep_dir: Path | str, *, require_complete: bool = True) -> pd.DataFrame:
    """sweep.parquet's content (see the module doc), read from the cells' directories."""
    sweep_dir = Path(sweep_dir)
    manifest = load_manifest(sweep_dir, require_complete=require_complete)
    paths = [s["path"] for s in manifest.get("sets") or []]
    rows = []
    for cell in manifest.get("cells") or []:
        summaries = _cell_summaries(sweep_dir / cell["name"])
        verdicts = sorted({str(s.get("verdict")) for s in summaries})
        row: dict[str, Any] = {"cell": cell["name"]}
        row |= {p: cell["values"].get(p) for p in paths}
        row |= {"verdict": "/".join(verdicts), "n": len(summaries)}
        rows.append(row | _metric_columns(summaries))
    frame = pd.DataFrame(rows)
    floats = [c for c in frame.columns if c not in {"cell", "verdict", "n", *paths}]
    return frame.astype({c: "float64" for c in floats})


NOT_PLOTTED = frozenset({"stock"})  # a column for ratios (sold / stock), not a result


def plotted_metrics(frame: pd.DataFrame) -> list[Metric]:
    """The metrics with at least one measured value (no empty plots)."""
    return [
        m
        for m in SWEEP_METRICS
        if m.name not in NOT_PLOTTED and m.name in frame and frame[m.name].notna().any()
    ]
