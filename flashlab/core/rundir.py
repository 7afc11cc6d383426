"""The run-directory format: file names, the history and faults schemas, the truth model, loading.

`reports/<run-id>/` holds manifest.json, history.parquet, faults.parquet, truth.json,
summary.json, report.html. A run is complete only when manifest.json has `"complete": true`
(written last by the orchestrator); readers refuse incomplete runs with a clear error.
A missing, truncated or garbled file is a `RunDirError` naming the file (the CLI's exit 2), never
a pyarrow or JSON traceback. `SCHEMA_VERSION` is the version of this output contract
(manifest.json, summary.json, experiment files; the JSON Schemas in flashlab/schemas/).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError

from flashlab.core.errors import UserError
from flashlab.core.facts import ALL_TRUTH_FIELDS
from flashlab.core.validation import first_error

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

# The output contract's version: manifest.json and summary.json carry it as `schema_version`.
# Bump it whenever flashlab/schemas/*.json change (tests/test_schema.py enforces this).
SCHEMA_VERSION = 9  # 2: isolation, guards, repeat, product.settings; by_fault, phase
# 3: checks may be unknown (ok/count None), undersold, premature_sold_out, fairness.fcfs_*
# 4: strategy queue, product.rate_limit, retry_on rate_limited
# 5: host_speed (the host CPU-speed probe per side of the split)
# 6: targets (experiment `target:`, the target file schema), checks may be n/a (`na`,
#    na_checks), unknown_answers, acknowledged; sold/stock_remaining may be None; truth
#    `fields`/`source`, manifest `facts`
# 7: experiment fields naming a registry entry (engine.kind, engine.client, stack.platform,
#    product.strategy, faults[].fault) list its names, marked `x-registry` (open: a new entry is
#    no new version, flashlab.lab.json_schemas.content_hash)
# 8: the capacity probe (experiment `capacity:`; manifest and summary `capacity`, `ideal`,
#    summary `relative`), relative clauses (`<key> < 1.5 * ideal.drain_ms`: clause `factor`,
#    `ref`, `ref_value`, `ratio`; `expected` None when the reference was not measured)
# 9: experiment `engine.connections` may be `auto` (the default: the stack's measured knee)

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
        # Who injected it: the Ray node id of the nemesis actor (flashlab.lab.nemesis), or
        # "driver" for the scheduler in the lab's own process. Added after schema 2.
        pa.field("node", pa.string(), nullable=True),
    ]
)
# Columns added to a table after files without them were written: those files read as null.
ADDED_COLUMNS: frozenset[str] = frozenset({"node"})


class TruthOrder(BaseModel):
    """One sold unit. A backend the lab did not build may record only some of these (truth
    `fields` says which); the lab's own stack records all three."""

    order_id: str | None = None
    user_id: str | None = None
    ts_ms: int | None = None


class Truth(BaseModel):
    """The product's final state, read from the backend's own store (never through the API).

    `fields` says what the read returned (flashlab.core.facts.TRUTH_FIELDS): `stock` (then
    `stock_remaining` is a number), `orders` (then `orders` lists every sold unit) and which
    order fields (`order_id`, `user_id`, `ts_ms`). The lab's own stack reads all of them from
    Redis; a target reads what its file's `truth:` describes, possibly nothing."""

    product_id: str
    strategy: str
    stock_initial: int
    stock_remaining: int | None = None
    buyers: list[str] = Field(default_factory=list)
    orders: list[TruthOrder] = Field(default_factory=list)
    read_at_ns: int
    redis_info: dict[str, Any] = Field(default_factory=dict)
    source: str = "redis"  # redis | sql | http | none
    fields: list[str] = Field(default_factory=lambda: list(ALL_TRUTH_FIELDS))

    def has(self, field: str) -> bool:
        return field in self.fields


class ManifestHead(BaseModel):
    """The manifest.json keys analysis reads, typed; everything else passes through untouched."""

    model_config = ConfigDict(extra="allow")

    schema_version: int | None = None  # absent in runs made before the output contract
    run_id: str | None = None
    complete: bool = False
    experiment: dict[str, Any] = Field(default_factory=dict)
    load_start_ns: int | None = None
    load_end_ns: int | None = None
    engine: dict[str, Any] | None = None
    stack: dict[str, Any] | None = None


class RunDirError(UserError):
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
        return str(self.manifest.get("run_id", self.path.name))


def read_json(path: Path) -> dict[str, Any]:
    """A run file holding one JSON object; RunDirError naming the file if missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunDirError(f"{path.parent}: missing {path.name}") from exc
    except UnicodeDecodeError as exc:
        raise RunDirError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg})") from exc
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_parquet(path: Path, schema: pa.Schema) -> pd.DataFrame:
    """A run's Parquet table with `schema`'s columns and types; RunDirError naming the file otherwise.

    Truncated or garbled files fail in pyarrow (footer, thrift, decompression, page checksums,
    undecodable names); a file that still parses but lost columns or changed types fails the cast."""
    try:
        table = pq.read_table(path, page_checksum_verification=True)
        for name in ADDED_COLUMNS & (set(schema.names) - set(table.column_names)):
            added = schema.field(name)
            table = table.append_column(added, pa.nulls(len(table), added.type))
        missing = [name for name in schema.names if name not in table.column_names]
        if missing:
            raise RunDirError(f"{path}: missing column(s) {', '.join(missing)}")
        return table.select(schema.names).cast(schema).to_pandas()
    except FileNotFoundError as exc:
        raise RunDirError(f"{path.parent}: missing {path.name}") from exc
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise RunDirError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc


def _validated(path: Path, model: type[BaseModel], data: dict[str, Any] | None = None) -> Any:
    """`path`'s JSON object (or `data` read from it) checked against `model`; RunDirError naming
    the file and the field."""
    try:
        return model.model_validate(read_json(path) if data is None else data)
    except ValidationError as exc:
        raise RunDirError(f"{path}: {first_error(exc)}") from None


def load_run(path: Path | str, *, require_complete: bool = True) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory")
    manifest = read_json(path / MANIFEST)
    if require_complete and manifest.get("complete") is not True:
        raise RunDirError(f"{path}: run is incomplete (manifest.json has no complete=true)")
    _validated(path / MANIFEST, ManifestHead, manifest)
    history = read_parquet(path / HISTORY, HISTORY_SCHEMA)
    faults = read_parquet(path / FAULTS, FAULTS_SCHEMA)  # written (maybe empty) by every run
    truth = _validated(path / TRUTH, Truth)
    return Run(path=path, manifest=manifest, history=history, faults=faults, truth=truth)


def write_text_atomic(path: Path, text: str, *, per_process: bool = False) -> Path:
    """Write via a temp file + rename so readers never see half a file (the lab's only way).

    per_process: name the temp file after this process, for a file several processes may
    rewrite at once (the stack state file)."""
    path = Path(path)
    if per_process:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    else:
        tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file + rename so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str))
