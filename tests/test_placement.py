"""Fault placement (flashlab.analysis.placement): a fault that lands while stock remains and purchases
are in flight is a hit; one after sell-out is a miss, named in one line. Synthetic runs (the
outage's timing has to be planted exactly; the real demo run checks the same thing end to end)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from flashlab.analysis.placement import missed
from flashlab.analysis.placement import placement
from flashlab.core.rundir import load_run
from flashlab.testing.synthetic import Outage
from flashlab.testing.synthetic import SyntheticSpec
from flashlab.testing.synthetic import write_synthetic


def sale(tmp_path: Path, stock: int, start_s: float) -> Path:
    path = tmp_path / f"stock-{stock}-at-{start_s}"
    spec = SyntheticSpec(
        run_id=path.name,
        shoppers=400,
        stock=stock,
        arrival_s=1.0,
        busy_p=0.0,
        outage=Outage(start_s=start_s, end_s=start_s + 0.1),
    )
    write_synthetic(path, spec)
    return path


def test_fault_during_the_sale_is_a_hit(tmp_path: Path) -> None:
    run = load_run(sale(tmp_path, stock=350, start_s=0.3))
    (row,) = placement(run)
    assert row["fault"] == "redis-kill" and row["hit"]
    assert 0 < row["stock_remaining_at_inject"] < 350
    assert row["in_flight"] > 0
    assert abs(row["inject_s"] - 0.3) < 0.05
    assert missed(run) == []


def test_fault_after_sell_out_is_a_miss(tmp_path: Path) -> None:
    run = load_run(sale(tmp_path, stock=20, start_s=0.8))
    (row,) = placement(run)
    assert row["stock_remaining_at_inject"] == 0 and not row["hit"]
    (line,) = missed(run)
    assert line.startswith("fault redis-kill (#0) landed at 0.8") and "after sell-out" in line


def test_demo_faults_hit_the_sale_end_to_end(tmp_path: Path) -> None:
    """`flashlab demo` small (600 shoppers a run, real stacks): both faults of the chaos run land
    while stock remains and purchases are in flight, and the outcomes are as expected (exit 0)."""
    args = ["demo", "--shoppers", "600", "--isolation", "off", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "flashlab.cli", *args],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    placed = re.findall(
        r"fault (\S+) at [\d.]+ s: (\d+) units left, (\d+) purchases in flight", proc.stdout
    )
    assert [p[0] for p in placed] == ["worker-kill", "redis-kill"], proc.stdout[-2000:]
    assert all(int(left) > 0 and int(flight) > 0 for _, left, flight in placed)
    assert "all outcomes as expected" in proc.stdout


def test_an_instant_fault_counts_until_its_effect_ended(tmp_path: Path) -> None:
    """A worker kill "recovers" the instant the signal is sent; its effect lasts until the worker
    respawned (observed.recovered_ns). Purchases sent meanwhile met the fault and count."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from flashlab.core.rundir import FAULTS

    path = sale(tmp_path, stock=350, start_s=0.3)
    table = pq.read_table(path / FAULTS)
    faults = table.to_pandas()
    inject = int(faults.loc[0, "inject_ns"])
    faults.loc[0, "recover_ns"] = inject + 1_000  # instant: 1 us
    pq.write_table(pa.Table.from_pandas(faults, schema=table.schema), path / FAULTS)
    (instant,) = placement(load_run(path))
    faults.loc[0, "observed"] = json.dumps(
        {"recovered_ns": inject + 300_000_000}
    )  # back 0.3 s later
    pq.write_table(pa.Table.from_pandas(faults, schema=table.schema), path / FAULTS)
    (effect,) = placement(load_run(path))
    assert effect["in_flight"] > instant["in_flight"]
    assert abs(effect["recover_s"] - 0.6) < 0.05 and abs(instant["recover_s"] - 0.3) < 0.05
