"""The Compose `ray` profile end to end: the smoke experiment with the stack AND the Ray nodes in
containers (`--platform compose --engine ray`), shoppers as actors inside them, the history
collected on the host, judged like any run. Images are rebuilt only when their source-hash
label is stale."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import run_flashlab

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_runs_with_shoppers_as_ray_actors_in_compose(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # A first image build on a busy 2-core machine takes minutes.
    proc = run_flashlab(
        "run",
        str(ROOT / "experiments" / "smoke.yaml"),
        "--platform",
        "compose",
        "--engine",
        "ray",
        "--no-report",
        "--json",
        "--out",
        str(out),
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "pass"
    assert summary["sold"] == 30 and summary["oversell"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    stack = manifest["stack"]
    assert stack["platform"] == "compose"
    # Only 127.0.0.1 is published: the client port the driver attached through.
    assert stack["extra"]["ray_address"].startswith("ray://127.0.0.1:")
    assert {"ray-head", "ray-worker"} <= {c["name"] for c in stack["components"]}
    history = pq.read_table(out / "history.parquet")
    assert set(history.column("worker").to_pylist()) == {"ray-0"}
    assert history.num_rows > 0
