"""The files a trial set or a sweep gets once its runs are done: its parquet, its JSON, its HTML.

Judging is flashlab.analysis.trials' (a set) and flashlab.analysis.sweep_results' (a sweep);
rendering is flashlab.analysis.report's. This module writes their results side by side, and the
orchestrators (flashlab.lab.trials, flashlab.lab.sweep_runner) call it before they flip their
manifest's `complete`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from flashlab.analysis.report import write_sweep_report
from flashlab.analysis.report import write_trials_report
from flashlab.analysis.sweep_results import SWEEP_PARQUET
from flashlab.analysis.sweep_results import load_manifest
from flashlab.analysis.sweep_results import sweep_frame
from flashlab.analysis.trials import TRIALS_JSON
from flashlab.analysis.trials import TRIALS_PARQUET
from flashlab.analysis.trials import load_set
from flashlab.analysis.trials import summarize_set
from flashlab.analysis.trials import trial_rows
from flashlab.core.rundir import write_json_atomic


def write_set_outputs(set_dir: Path | str, *, require_complete: bool = False) -> dict[str, Any]:
    """Write trials.parquet, trials.json and trials.html of a set; returns trials.json's content.

    The orchestrator calls this before it flips the set's `complete` (hence the default)."""
    set_dir = Path(set_dir)
    trial_set = load_set(set_dir, require_complete=require_complete)
    result = summarize_set(trial_set)
    frame = trial_rows(trial_set.trials)
    tmp = set_dir / (TRIALS_PARQUET + ".partial")
    frame.to_parquet(tmp, index=False)
    tmp.replace(set_dir / TRIALS_PARQUET)
    write_json_atomic(set_dir / TRIALS_JSON, result)
    write_trials_report(set_dir, result)
    return result


def write_sweep_outputs(sweep_dir: Path | str, *, require_complete: bool = True) -> pd.DataFrame:
    """Write sweep.parquet and sweep.html; the orchestrator calls it before flipping `complete`."""
    sweep_dir = Path(sweep_dir)
    frame = sweep_frame(sweep_dir, require_complete=require_complete)
    tmp = sweep_dir / (SWEEP_PARQUET + ".partial")
    frame.to_parquet(tmp, index=False)
    tmp.replace(sweep_dir / SWEEP_PARQUET)
    manifest = load_manifest(sweep_dir, require_complete=require_complete)
    write_sweep_report(sweep_dir, manifest, frame)
    return frame
