"""The operation history: one row per purchase attempt, as an Arrow schema, a row type and a Parquet writer.

Jepsen style: `type` is `ok` (the server acknowledged a purchase), `fail` (definitely did not happen)
or `info` (indeterminate: a timeout, a dropped connection after the request was sent, a gateway
error, or a 503 the server marked `maybeCommitted`). Timestamps are epoch nanoseconds
(`time.time_ns()`), so they line up with fault times and the server's order log.
Response time = complete - intended (no coordinated omission); service time = complete - invoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from flashlab.core.rundir import HISTORY_SCHEMA

if TYPE_CHECKING:
    from flashlab.simulator.schedule import ShopperPlan

OpType = Literal["ok", "fail", "info"]


@dataclass(slots=True)
class Op:
    """One attempt, as the shopper saw it."""

    run_id: str
    op_id: str
    shopper: int
    user_id: str
    profile: str
    attempt: int
    worker: str
    intended_ns: int
    invoke_ns: int
    complete_ns: int
    type: OpType
    status: int
    code: str | None = None
    order_id: str | None = None
    remaining: int | None = None
    error: str | None = None


def plan_op(
    s: ShopperPlan,
    run_id: str,
    worker: str,
    attempt: int,
    times: tuple[int, int, int],
    type: OpType,
    status: int,
    *,
    op_id: str | None = None,
    **answer: Any,
) -> Op:
    """One row of shopper `s`: who (from its plan), which attempt, when (intended, invoke,
    complete ns), what; `answer` holds the optional columns (code, order_id, remaining, error)."""
    return Op(
        run_id=run_id,
        op_id=op_id or f"{s.shopper}:{attempt}",
        shopper=s.shopper,
        user_id=s.user_id,
        profile=s.profile,
        attempt=attempt,
        worker=worker,
        intended_ns=times[0],
        invoke_ns=times[1],
        complete_ns=times[2],
        type=type,
        status=status,
        **answer,
    )


OP_FIELDS = [f.name for f in fields(Op)]
assert HISTORY_SCHEMA.names == OP_FIELDS, (
    "Op and HISTORY_SCHEMA must list the same columns in order"
)


def ops_to_batch(ops: list[Op]) -> pa.RecordBatch:
    """Columnar batch of ops; what engine workers ship to the driver."""
    columns = {name: [getattr(op, name) for op in ops] for name in OP_FIELDS}
    return pa.RecordBatch.from_pydict(columns, schema=HISTORY_SCHEMA)


class HistoryWriter:
    """Streams batches into `history.parquet`; written to a temp name and renamed on close,
    so a crashed run never leaves a history that looks complete."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_suffix(".parquet.partial")
        self._writer = pq.ParquetWriter(
            self._tmp, HISTORY_SCHEMA, compression="zstd", write_page_checksum=True
        )
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def close(self) -> Path:
        self._writer.close()
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)
