"""Runs one flashlab engine as its own process (so benchmarks can measure its whole process tree).

`python -m flashlab.bench.drive SPEC.json`: SPEC holds the LoadPlan fields plus `history` (a Parquet path).
Prints one line `DRIVEJSON {...}` with the EngineResult. Used only by the benchmarks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def engine_plan(spec: dict[str, Any]) -> Any:
    # start-up cost: only this path pays for pandas, pydantic, yaml
    from flashlab.simulator.engines.engine import LoadPlan
    from flashlab.simulator.scenario import Scenario

    fields = {k: v for k, v in spec.items() if k not in ("engine", "history")}
    fields["scenario"] = Scenario.model_validate(fields["scenario"])
    return LoadPlan(**fields)


def main(argv: list[str]) -> int:
    # start-up cost: only this path pays for pandas, pydantic, yaml
    from flashlab.core.rundir import HISTORY_SCHEMA
    from flashlab.simulator.engines import get_engine

    spec = json.loads(Path(argv[0]).read_text())
    batches: list[pa.RecordBatch] = []
    engine = get_engine(spec["engine"])
    result = engine.run(engine_plan(spec), on_batch=batches.append)
    table = pa.Table.from_batches(batches, schema=HISTORY_SCHEMA)
    pq.write_table(table, spec["history"])
    sys.stdout.write("DRIVEJSON " + json.dumps(result.to_dict(), default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
