"""The nemesis: faults injected by a Ray actor placed on the node with the stack resource.

A real single-node Ray (started here, in this process, on 127.0.0.1 as the engine starts its own,
with the custom resource `flashlab_stack`), a real local stack, a real redis-pause injected from
the actor's process; faults.parquet names the node. The cluster's processes are reaped by PID."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flashlab.core import rundir
from flashlab.core.errors import UserError
from flashlab.lab import nemesis
from flashlab.lab.experiment import Experiment
from flashlab.lab.experiment import load_experiment
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Ray bound to 127.0.0.1 with `flashlab_stack: 1`; yields its GCS address."""
    import ray

    from flashlab.simulator.engines import ray_engine

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    ray_dir = ray_engine._RayDir(str(tmp_path_factory.mktemp("nemesis")))
    started: list[psutil.Process] = []
    try:
        with ray_engine._local_ray_env(ray_dir.path):
            ctx = _init_with_stack_resource(ray, ray_engine, ray_dir.path, before)
            try:
                yield ctx.address_info["gcs_address"]
            finally:
                started = ray_engine.session_processes(before)
                ray.shutdown()
    finally:
        started += ray_engine.session_processes(before)
        _, alive = psutil.wait_procs(started, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        ray_dir.cleanup()


def _init_with_stack_resource(ray, ray_engine, path: Path, before: set[int]):
    """ray.init as the engine's local cluster plus the stack resource; retried once, like the
    engine, when Ray's fixed 30 s raylet wait runs out on a busy machine."""
    for attempt in (1, 2):
        try:
            return ray.init(
                address=None,
                num_cpus=2,
                resources={nemesis.STACK_RESOURCE: 1},
                object_store_memory=ray_engine.OBJECT_STORE_BYTES,
                _temp_dir=str(path),
                _node_ip_address=ray_engine.LOOPBACK,
                _system_config={"enable_metrics_collection": False},
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                logging_level="error",
            )
        except Exception as exc:
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise
            with contextlib.suppress(Exception):
                ray.shutdown()
            leftovers = ray_engine.session_processes(before)
            for proc in leftovers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            psutil.wait_procs(leftovers, timeout=5)
    raise AssertionError("unreachable")


def paused_experiment(address: str) -> Experiment:
    base = load_experiment(ROOT / "experiments" / "smoke.yaml").model_dump(mode="json")
    base |= {
        "name": "nemesis",
        "product": {"id": "nemesis", "stock": 40, "strategy": "lua"},
        "scenario": base["scenario"]
        | {"shoppers": 400, "arrival": {"kind": "poisson", "rate_per_s": 250}, "duration_s": 30},
        "engine": {"kind": "ray", "workers": 1, "connections": 32, "ray_address": address},
        "faults": [{"fault": "redis-pause", "at_s": 0.4, "duration_s": 0.6}],
        "hypothesis": ["oversell == 0", "lost_acknowledged == 0", "duplicate_purchases == 0"],
    }
    return Experiment.model_validate(base)


def test_nemesis_injects_from_the_stack_node(stack_node: str, tmp_path: Path) -> None:
    import ray

    outcome = execute(RunRequest(experiment=paused_experiment(stack_node), run_dir=tmp_path / "r"))
    node_id = ray.get_runtime_context().get_node_id()
    manifest = json.loads((outcome.run_dir / rundir.MANIFEST).read_text())
    assert manifest["complete"] is True
    placed = manifest["nemesis"]
    assert placed["node_id"] == node_id and placed["node_ip"] == "127.0.0.1"
    assert placed["pid"] != os.getpid()  # injected from the actor's process, not the driver
    faults = pq.read_table(outcome.run_dir / rundir.FAULTS).to_pylist()
    assert [f["fault"] for f in faults] == ["redis-pause"]
    row = faults[0]
    assert row["node"] == node_id and row["error"] is None, row
    observed = json.loads(row["observed"])
    # Redis really was frozen (the probe through the truth channel timed out), then answered.
    assert observed["inject"]["probe"]["result"] == "timeout", observed
    assert observed["recover"]["probe"]["result"] == "ok", observed
    assert outcome.summary["verdict"] == "pass", outcome.summary.get("verdict_reasons")


def test_cluster_without_the_stack_resource_is_bad_input(
    stack_node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same real cluster, asked for a resource no node of it offers.
    monkeypatch.setattr(nemesis, "STACK_RESOURCE", "flashlab_stack_elsewhere")
    with pytest.raises(UserError, match=r"engine\.ray_address: .*flashlab_stack_elsewhere"):
        execute(RunRequest(experiment=paused_experiment(stack_node), run_dir=tmp_path / "r"))
    manifest = json.loads((tmp_path / "r" / rundir.MANIFEST).read_text())
    assert manifest["complete"] is False and "flashlab_stack_elsewhere" in manifest["error"]
    assert not (tmp_path / "r" / rundir.SUMMARY).exists()


@pytest.mark.parametrize(
    ("fault", "why"),
    [("redis-kill", "restarts a component"), ("actor-kill", "needs the load engine")],
)
def test_faults_the_nemesis_cannot_inject_are_refused(fault: str, why: str) -> None:
    exp = paused_experiment("127.0.0.1:1")
    exp = exp.model_copy(
        update={"faults": [exp.faults[0].model_copy(update={"fault": fault, "params": {}})]}
    )
    assert nemesis.wants_nemesis(exp)
    with pytest.raises(UserError, match=rf"faults\.0\.fault: {fault} .*{why}"):
        nemesis.check_faults(exp.faults)
    local = exp.model_copy(update={"engine": exp.engine.model_copy(update={"ray_address": None})})
    assert not nemesis.wants_nemesis(local)  # locally the scheduler stays in-process


def test_faults_written_before_the_node_column_still_load(tmp_path: Path) -> None:
    old_schema = pa.schema([f for f in rundir.FAULTS_SCHEMA if f.name != "node"])
    row = {
        "fault": "redis-pause",
        "index": 0,
        "target": "redis",
        "inject_ns": 1,
        "recover_ns": 2,
        "params": "{}",
        "observed": "{}",
        "error": None,
    }
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema), tmp_path / rundir.FAULTS)
    frame = rundir.read_parquet(tmp_path / rundir.FAULTS, rundir.FAULTS_SCHEMA)
    assert list(frame.columns) == rundir.FAULTS_SCHEMA.names
    assert frame["node"].isna().all() and frame["fault"].tolist() == ["redis-pause"]
