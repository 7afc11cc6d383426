"""The capacity probe on a real stack (redis, nginx, uvicorn): a run measures its machine before the
load, the scratch product leaves no trace, `capacity: off` skips it, a target file is not probed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import redis

from flashlab.analysis.capacity import CAPACITY_KEYS
from flashlab.analysis.capacity import IDEAL_KEYS
from flashlab.core.platform import StackInfo
from flashlab.core.target import load_target
from flashlab.lab.capacity import SCRATCH_PRODUCT
from flashlab.lab.capacity import TARGET_REASON
from flashlab.lab.capacity import probe_capacity
from flashlab.lab.experiment import Experiment
from flashlab.lab.experiment import load_experiment
from flashlab.lab.remote import Target
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute
from flashlab.lab.stacks import RunStack

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.yaml"


def _experiment(product_id: str, **update: object) -> Experiment:
    exp = load_experiment(SMOKE)
    product = exp.product.model_copy(update={"id": product_id})
    return exp.model_copy(update={"product": product, **update})


def _run(local_stack: StackInfo, exp: Experiment, run_dir: Path) -> dict[str, object]:
    target = Target(local_stack.base_url, local_stack.redis_url, local_stack.admin_token)
    outcome = execute(RunRequest(experiment=exp, run_dir=run_dir, target=target))
    return outcome.summary


def _scratch_keys(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return list(client.scan_iter(match=f"fl:{{{SCRATCH_PRODUCT}}}:*"))
    finally:
        client.close()


def test_a_run_measures_capacity_and_the_scratch_product_leaves_no_trace(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    summary = _run(local_stack, _experiment("capacity-e2e"), run_dir)
    capacity, ideal = summary["capacity"], summary["ideal"]
    assert isinstance(capacity, dict) and isinstance(ideal, dict)
    measured = [k for k in CAPACITY_KEYS if k != "wrk_buy_rps" or shutil.which("wrk")]
    for key in measured:
        assert capacity[key] > 0, key
    for key in IDEAL_KEYS:
        assert ideal[key] > 0, key
    assert capacity["available"] is True and capacity["duration_s"] > 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["capacity"]["buy_rps"] == capacity["buy_rps"]
    assert manifest["ideal"]["drain_s"] == ideal["drain_s"]
    # No trace: not in Redis, not in the run's truth or history, not in the server's counts.
    assert _scratch_keys(local_stack.redis_url) == []
    truth = json.loads((run_dir / "truth.json").read_text())
    assert truth["product_id"] == "capacity-e2e"
    assert not [o for o in truth["orders"] if o["user_id"].startswith("capacity")]
    users = pq.read_table(run_dir / "history.parquet").column("user_id").to_pylist()
    assert users and not [u for u in users if u.startswith("capacity")]
    reconciliation = summary["reconciliation"]
    assert isinstance(reconciliation, dict) and reconciliation["ok"] is True, reconciliation
    assert 'id="capacity"' in (run_dir / "report.html").read_text()


def test_capacity_off_skips_the_probe(local_stack: StackInfo, tmp_path: Path) -> None:
    summary = _run(local_stack, _experiment("capacity-off", capacity="off"), tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["capacity"] == {"available": False, "reason": "capacity: off"}
    capacity, ideal = summary["capacity"], summary["ideal"]
    assert isinstance(capacity, dict) and isinstance(ideal, dict)
    assert all(capacity[k] is None for k in CAPACITY_KEYS)
    assert all(ideal[k] is None for k in IDEAL_KEYS)
    assert summary["verdict"] == "pass"  # smoke's clauses need no capacity


def test_a_target_files_backend_is_not_probed() -> None:
    """Nothing is contacted: the addresses below serve nothing, and no error is raised."""
    spec = load_target(ROOT / "targets" / "node-lock.yaml")
    stack = RunStack("http://127.0.0.1:9", "redis://127.0.0.1:9/0", "", target=spec)
    record = probe_capacity(stack, _experiment("x"), None)
    assert record == {"available": False, "reason": TARGET_REASON}
