"""Run ids and the directories runs write: a new id, an empty directory, an honest failure.

`new_run_id` names a run (or a trial set, or a sweep, with their own prefix); `prepare_out_dir`
makes its directory and refuses one that already holds something; `record_failure` leaves the
manifest `complete: false` with the error and the time. The directory's format itself is
flashlab.core.rundir.
"""

from __future__ import annotations

import secrets
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from flashlab.core import rundir
from flashlab.core.errors import UserError
from flashlab.lab.experiment import Experiment


def new_run_id(experiment: Experiment, tag: str = "") -> str:
    """`<UTC time>-<experiment>[-<tag>]-<4 hex>`: sortable, readable, unique enough."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    middle = f"{experiment.name}-{tag}" if tag else experiment.name
    return f"{stamp}-{middle}-{secrets.token_hex(2)}"


def prepare_out_dir(exact: Path | None, root: Path, name: str) -> Path:
    """The directory a run or trial set writes: `exact` (--out) or root/name; refused (naming
    --out) when it already holds something, so an earlier result is never mixed in."""
    out = exact or (root / name)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out: {out} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    return out


def record_failure(path: Path, manifest: dict[str, Any], exc: BaseException) -> None:
    """Leave an honest trace: the manifest stays `complete: false` and says why and when."""
    manifest["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    manifest["finished_at"] = datetime.now(UTC).isoformat()
    rundir.write_json_atomic(path, manifest)
