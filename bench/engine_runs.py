"""flashlab's engines, each driven in its own measured process (flashlab.bench.drive)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flashlab.bench.context import REPO_ROOT
from flashlab.bench.measured import ToolError
from flashlab.bench.measured import ToolRun
from flashlab.bench.measured import python
from flashlab.bench.measured import run_tool
from flashlab.bench.measured import tail
from flashlab.bench.stack import reset_product
from flashlab.system.strategies import needs_queue_protocol


def pct_ms(values_ns: Sequence[float] | np.ndarray, q: float) -> float | None:
    arr = np.asarray(values_ns, dtype=float)
    if arr.size == 0:
        return None
    return round(float(np.percentile(arr, q)) / 1e6, 3)


@dataclass
class EngineRun:
    engine: str
    result: dict[str, Any]  # EngineResult.to_dict()
    history: Any  # pandas.DataFrame in HISTORY_SCHEMA
    tool: ToolRun

    @property
    def window(self) -> tuple[float, float]:
        """The load window in epoch seconds: first send to last answer."""
        h = self.history
        if h.empty:
            return (self.tool.started, self.tool.ended)
        return (float(h["invoke_ns"].min()) / 1e9, float(h["complete_ns"].max()) / 1e9)

    @property
    def window_cpu_s(self) -> float:
        return self.tool.monitor.cpu_between(*self.window)

    def stats(self) -> dict[str, Any]:
        return history_stats(self.history)


def history_stats(h: Any) -> dict[str, Any]:
    """Requests, achieved rate, service/response percentiles and outcome counts of a history."""
    if h.empty:
        return {"requests": 0}
    t0, t1 = float(h["invoke_ns"].min()), float(h["complete_ns"].max())
    service = (h["complete_ns"] - h["invoke_ns"]).to_numpy()
    response = (h["complete_ns"] - h["intended_ns"]).to_numpy()
    answered = h[h["status"] > 0]
    return {
        "requests": len(h),
        "ok": int((h["type"] == "ok").sum()),
        "info": int((h["type"] == "info").sum()),
        "no_answer": int((h["status"] == 0).sum()),
        "codes": {str(k): int(v) for k, v in h["code"].fillna("none").value_counts().items()},
        "window_s": round((t1 - t0) / 1e9, 3),
        "rate_per_s": round(len(answered) / max((t1 - t0) / 1e9, 1e-9), 1),
        "service_p50_ms": pct_ms(service, 50),
        "service_p95_ms": pct_ms(service, 95),
        "service_p99_ms": pct_ms(service, 99),
        "response_p50_ms": pct_ms(response, 50),
        "response_p95_ms": pct_ms(response, 95),
        "response_p99_ms": pct_ms(response, 99),
    }


def run_engine(
    engine: str,
    *,
    base_url: str,
    product_id: str,
    scenario: Any,
    seed: int,
    workers: int,
    connections: int,
    run_id: str,
    timeout_s: float,
    wrapper: list[str] | None = None,
    client: str = "aiohttp",
    strategy: str = "lua",
) -> EngineRun:
    """Run `flashlab.bench.drive` for one engine; its history comes back as a DataFrame.

    `wrapper` prefixes the command (a profiler); the tree then includes the wrapper too.
    `client` is the shopper HTTP client (flashlab.simulator.CLIENTS). `strategy` is the
    product's: a waiting room (`queue`) is driven with the queue protocol, as `flashlab run` does."""
    # start-up cost: only this path pays for pyarrow
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as tmp:
        spec = {
            "engine": engine,
            "history": str(Path(tmp) / "history.parquet"),
            "run_id": run_id,
            "base_url": base_url,
            "product_id": product_id,
            "scenario": scenario.model_dump(mode="json"),
            "seed": seed,
            "client": client,
            "workers": workers,
            "connections": connections,
            "tmp_dir": str(Path(tmp) / "engine"),
            "queue": needs_queue_protocol(strategy),
        }
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        tool = run_tool(
            [*(wrapper or []), python(), "-m", "flashlab.bench.drive", str(spec_path)],
            name=f"engine-{engine}",
            timeout_s=timeout_s,
            cwd=REPO_ROOT,
        )
        history = pq.read_table(spec["history"]).to_pandas()
    for line in tool.output.splitlines():
        if line.startswith("DRIVEJSON "):
            return EngineRun(engine, json.loads(line.removeprefix("DRIVEJSON ")), history, tool)
    raise ToolError(f"engine {engine}: no result line ({tail(tool.output)})")


def sale_run(
    info: Any,
    p: dict[str, Any],
    product_id: str,
    stock: int,
    scenario: Any,
    *,
    workers: int,
    connections: int,
    run_id: str,
    timeout_s: float,
) -> EngineRun:
    """One measured sale on a benchmark's stack: reset `product_id` to `stock` units of the
    params' `strategy`, then drive `scenario` with the params' `engine`, `seed` and `client`."""
    reset_product(info, product_id, stock, p["strategy"])
    return run_engine(
        p["engine"],
        base_url=info.base_url,
        product_id=product_id,
        scenario=scenario,
        seed=p["seed"],
        workers=workers,
        connections=connections,
        run_id=run_id,
        timeout_s=timeout_s,
        client=p["client"],
        strategy=p["strategy"],
    )
