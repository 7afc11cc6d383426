"""A whole run on the Compose platform: a sale through a Redis restart done via the Docker SDK,
judged from the run directory exactly like a local run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flashlab.lab.experiment import parse_experiment
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute

pytestmark = pytest.mark.compose


@pytest.mark.parametrize("fault", ["redis-restart", "redis-kill", "redis-pause"])
def test_compose_sale_through_a_redis_fault_loses_nothing_with_aof_always(
    fault: str, tmp_path: Path
) -> None:
    experiment = parse_experiment(
        {
            "name": f"compose-{fault}",
            "seed": 21,
            "stack": {
                "platform": "compose",
                "workers": 2,
                "durability": "aof-always",
                "prometheus": False,
            },
            "product": {"id": "iphone", "stock": 1500, "strategy": "lua"},
            "scenario": {
                "shoppers": 1200,
                "arrival": {"kind": "poisson", "rate_per_s": 400},  # ~3 s: before, during, after
                "duration_s": 40,
                "request_timeout_s": 3,
            },
            "engine": {"kind": "inline", "workers": 1, "connections": 64},
            "faults": [{"fault": fault, "at_s": 1.0, "duration_s": 0.8}],
            "hypothesis": ["oversell == 0", "lost_acknowledged == 0", "duplicate_purchases == 0"],
        }
    )
    outcome = execute(
        RunRequest(experiment=experiment, run_dir=tmp_path / "run", write_report=False)
    )
    summary = outcome.summary
    assert summary["verdict"] == "pass", summary["hypothesis"]
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["stack"]["platform"] == "compose"
    # The fault happened and was recovered, observed on the container.
    assert len(summary["recovery"]) == 1
    row = summary["recovery"][0]
    assert row["fault"] == fault and row["error"] is None
    assert row["window_availability"] is not None and row["window_availability"] < 1.0
    assert row["first_success_s"] is not None
    assert summary["codes"].get("backend_unavailable", 0) > 0  # shoppers saw the outage as 503s
    assert summary["sold"] > 0 and summary["oversell"] == 0 and summary["lost_acknowledged"] == 0
    # Client history, the server's Prometheus counters (any worker's /metrics is the stack total)
    # and Redis truth agree.
    assert summary["reconciliation"]["ok"], summary["reconciliation"]["mismatches"]
