"""The run-directory format: file names, the history and faults schemas, the truth model, loading.

`reports/<run-id>/` holds manifest.json, history.parquet, faults.parquet, truth.json,
summary.json, report.html. A run is complete only when manifest.json has `"complete": true`
(written last by the orchestrator); readers refuse incomplete runs with a clear error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

MANIFEST = "manifest.json"
HISTORY = "history.parquet"
FAULTS = "faults.parquet"
TRUTH = "truth.json"
SUMMARY = "summary.json"
REPORT = "report.html"
METRICS = "metrics.json"  # Prometheus scrapes taken during the run (optional)

# One row per purchase attempt (Jepsen style); written by the simulator's HistoryWriter.
# `type` is ok | fail | info (indeterminate); timestamps are epoch ns.
HISTORY_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("op_id", pa.string(), nullable=False),  # "<shopper>:<attempt>", unique per run
        pa.field("shopper", pa.int64(), nullable=False),  # arrival rank: 0 arrives first
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("profile", pa.string(), nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),  # 1-based
        pa.field("worker", pa.string(), nullable=False),  # engine worker/actor that sent it
        pa.field("intended_ns", pa.int64(), nullable=False),
        pa.field("invoke_ns", pa.int64(), nullable=False),
        pa.field("complete_ns", pa.int64(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("status", pa.int32(), nullable=False),  # 0 when no HTTP answer arrived
        pa.field("code", pa.string(), nullable=True),  # body `code`, "ok" on 200
        pa.field("order_id", pa.string(), nullable=True),
        pa.field("remaining", pa.int64(), nullable=True),
        pa.field("error", pa.string(), nullable=True),  # client-side error text
    ]
)

FAULTS_SCHEMA = pa.schema(
    [
        pa.field("fault", pa.string(), nullable=False),  # catalogue name, e.g. redis-kill
        pa.field("index", pa.int32(), nullable=False),  # position in the schedule
        pa.field("target", pa.string(), nullable=True),  # component acted on
        pa.field("inject_ns", pa.int64(), nullable=False),
        pa.field("recover_ns", pa.int64(), nullable=True),  # null if it never recovered
        pa.field("params", pa.string(), nullable=True),  # JSON
        pa.field("observed", pa.string(), nullable=True),  # JSON: new pid, uptime, ...
        pa.field("error", pa.string(), nullable=True),
    ]
)


class TruthOrder(BaseModel):
    order_id: str
    user_id: str
    ts_ms: int


class Truth(BaseModel):
    """Final Redis state of the product, read directly from Redis (never through the API)."""

    product_id: str
    strategy: str
    stock_initial: int
    stock_remaining: int
    buyers: list[str]
    orders: list[TruthOrder]
    read_at_ns: int
    redis_info: dict[str, Any] = Field(default_factory=dict)


class RunDirError(Exception):
    """A run directory is missing, incomplete or malformed."""


@dataclass
class Run:
    path: Path
    manifest: dict[str, Any]
    history: pd.DataFrame
    faults: pd.DataFrame
    truth: Truth

    @property
    def run_id(self) -> str:
        return self.manifest.get("run_id", self.path.name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RunDirError(f"{path.parent}: missing {path.name}") from exc
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg})") from exc


def load_run(path: Path | str, *, require_complete: bool = True) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory")
    manifest = _read_json(path / MANIFEST)
    if require_complete and not manifest.get("complete"):
        raise RunDirError(f"{path}: run is incomplete (manifest.json has no complete=true)")
    if not (path / HISTORY).exists():
        raise RunDirError(f"{path}: missing {HISTORY}")
    history = pq.read_table(path / HISTORY).to_pandas()
    faults_path = path / FAULTS
    faults = (
        pq.read_table(faults_path).to_pandas()
        if faults_path.exists()
        else FAULTS_SCHEMA.empty_table().to_pandas()
    )
    truth = Truth.model_validate(_read_json(path / TRUTH))
    return Run(path=path, manifest=manifest, history=history, faults=faults, truth=truth)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file + rename so readers never see half a file."""
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    tmp.replace(path)
