"""Backends the lab did not build, judged end to end from their target files (docs/TARGETS.md).

Real parts only: tests/targets/node-express (Node.js + Express + ioredis, a real redis-server)
and tests/targets/pg-shop (FastAPI + asyncpg on a real, throwaway PostgreSQL cluster) are started
from targets/*.yaml by the lab, loaded by 2,000 shoppers, and judged from their own stores. Each
shipped experiment in experiments/targets/ runs once per session (a fixture) and several tests
read its run directory. The verdicts are the backends' real behaviour: the naive ones oversell
every time (2,000 concurrent buys against a read-await-write path), the atomic ones never can.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT
from support import assert_one_line_error
from support import run_flashlab

from flashlab.core.platform import StackStartError
from flashlab.core.rundir import load_run
from flashlab.core.target import load_target
from flashlab.lab.experiment import load_experiment
from flashlab.lab.probe import probe
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute
from flashlab.system import procs

EXPERIMENTS = ROOT / "experiments" / "targets"
TARGETS = ROOT / "targets"

pytestmark = [
    pytest.mark.skipif(
        shutil.which("node") is None, reason="node not installed (make test installs it)"
    ),
    pytest.mark.skipif(
        not list(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
        and not shutil.which("postgres"),
        reason="PostgreSQL server not installed (make test installs it)",
    ),
]


def _run(path: Path, out: Path, **overrides: Any) -> tuple[dict[str, Any], Path]:
    """One experiment in this process (its processes in the leak check's registry)."""
    before = set(procs.alive_pids())
    exp = load_experiment(path, overrides or None)
    outcome = execute(RunRequest(experiment=exp, run_dir=out, events=[]))
    assert set(procs.alive_pids()) <= before, "the run left target processes behind"
    return outcome.summary, outcome.run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[dict[str, Any], Path]]:
    """experiment name -> (summary, run dir), each shipped target experiment run once."""
    done: dict[str, tuple[dict[str, Any], Path]] = {}

    def get(name: str) -> tuple[dict[str, Any], Path]:
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "run"
            done[name] = _run(EXPERIMENTS / f"{name}.yaml", out)
        return done[name]

    return get


# --- the four verdicts ------------------------------------------------------------------------


def test_node_naive_oversells_and_fails(runs: Callable[[str], Any]) -> None:
    summary, _ = runs("node-naive")
    assert summary["verdict"] == "fail"
    assert summary["oversell"] > 0
    assert summary["sold"] > summary["stock_initial"] == 200
    assert summary["checks"]["oversell"]["detail"].startswith(f"{summary['sold']} orders in redis")


def test_node_lock_sells_exactly_the_stock_and_passes(runs: Callable[[str], Any]) -> None:
    summary, _ = runs("node-lock")
    assert summary["verdict"] == "pass", summary["verdict_reasons"]
    assert summary["sold"] == summary["acknowledged"] == 200 and summary["stock_remaining"] == 0
    assert summary["codes"].get("busy", 0) > 0  # the lock turned shoppers away with 409s


def test_pg_naive_oversells_and_the_orders_table_holds_more_rows_than_stock(
    runs: Callable[[str], Any],
) -> None:
    summary, run_dir = runs("pg-naive")
    assert summary["verdict"] == "fail" and summary["oversell"] > 0
    truth = load_run(run_dir).truth
    assert truth.source == "sql" and len(truth.orders) > truth.stock_initial
    assert {"order_id", "user_id", "ts_ms"} <= set(truth.fields)  # the SELECT's columns


def test_pg_atomic_sells_exactly_the_stock_and_passes(runs: Callable[[str], Any]) -> None:
    summary, _ = runs("pg-atomic")
    assert summary["verdict"] == "pass", summary["verdict_reasons"]
    assert summary["sold"] == summary["stock_initial"] == 200
    assert summary["stock_remaining"] == 0 and summary["lost_acknowledged"] == 0


def test_answers_are_read_by_the_targets_own_rules(runs: Callable[[str], Any]) -> None:
    """History codes are outcomes: 400 "Out of stock" is sold_out, pg's 409 'sold out' too."""
    node, _ = runs("node-lock")
    pg, pg_dir = runs("pg-atomic")
    assert {"ok", "sold_out"} <= set(node["codes"]) and "unknown" not in node["codes"]
    assert {"ok", "sold_out"} <= set(pg["codes"]) and "unknown" not in pg["codes"]
    h = load_run(pg_dir).history
    assert set(h.loc[h["code"].eq("sold_out"), "status"]) == {409}
    assert set(h.loc[h["code"].eq("ok"), "status"]) == {201}
    assert h.loc[h["code"].eq("ok"), "order_id"].notna().all()


def test_the_manifest_records_the_target_and_its_facts(runs: Callable[[str], Any]) -> None:
    _, run_dir = runs("pg-atomic")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["experiment"]["target"]["name"] == "pg-atomic"
    assert manifest["stack"]["target"] == "pg-atomic" and manifest["stack"]["platform"] == "target"
    assert sorted(manifest["facts"]) == ["order_id", "remaining", "user"]
    kinds = {c["name"]: c["kind"] for c in manifest["stack"]["components"]}
    assert kinds == {"postgres": "db", "api": "api"}


# --- chaos on a target ------------------------------------------------------------------------


def test_node_redis_restart_without_persistence_loses_acknowledged_orders(
    runs: Callable[[str], Any],
) -> None:
    summary, run_dir = runs("node-redis-restart")
    assert summary["verdict"] == "fail"
    assert summary["lost_acknowledged"] > 0 and summary["oversell"] == 0
    faults = load_run(run_dir).faults
    assert list(faults["fault"]) == ["redis-restart"] and list(faults["target"]) == ["redis"]
    observed = json.loads(faults["observed"].iloc[0])
    assert observed["inject"]["old_pid"] != observed["recover"]["new_pid"]
    # INFO over the target's Redis port proves the restart: a new server run id.
    assert observed["inject"]["run_id_before"] != observed["recover"]["run_id_after"]


def test_pg_worker_kill_sells_no_more_than_the_stock_and_explains_every_order(
    runs: Callable[[str], Any],
) -> None:
    summary, run_dir = runs("pg-worker-kill")
    assert summary["verdict"] == "pass", summary["verdict_reasons"]
    assert summary["oversell"] == 0 and summary["phantom_orders"] == 0
    run = load_run(run_dir)
    assert list(run.faults["target"]) == ["api"]
    h = run.history
    unanswered = h[h["status"].eq(0)]
    assert len(unanswered) > 0  # connections refused while the process was down
    # Every sold unit is acknowledged or explained by an indeterminate attempt of its buyer.
    acked = set(h.loc[h["type"].eq("ok"), "user_id"])
    maybe = set(h.loc[h["type"].eq("info"), "user_id"])
    assert all(o.user_id in acked | maybe for o in run.truth.orders)


# --- what a target does not offer: n/a, never a silent pass -----------------------------------


def _blind_node_target(tmp_path: Path) -> Path:
    """node-lock without any truth: the lab can judge only what the answers say."""
    data = yaml.safe_load((TARGETS / "node-lock.yaml").read_text())
    del data["truth"]
    data["reset"]["redis_url"] = "redis://127.0.0.1:{redis_port}"
    _absolute_paths(data)
    path = tmp_path / "node-blind.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_target_without_truth_gets_n_a_checks_with_reasons_everywhere(tmp_path: Path) -> None:
    target = _blind_node_target(tmp_path)
    out, junit = tmp_path / "run", tmp_path / "junit.xml"
    proc = run_flashlab(
        "run", str(EXPERIMENTS / "node-lock.yaml"), "--target-file", str(target),
        "--shoppers", "300", "--stock", "30", "--out", str(out), "--json", "--junit", str(junit),
        timeout=300,
    )  # fmt: skip
    # Clauses on lost_acknowledged / phantom_orders cannot be judged: inconclusive, exit 3.
    assert proc.returncode == 3, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    na = summary["na_checks"]
    assert "the orders (or buyers) read as truth" in na["lost_acknowledged"]
    assert "the stock read as truth" in na["conservation"]
    assert "oversell" not in na and summary["checks"]["oversell"]["ok"] is True
    assert "client side" in summary["checks"]["oversell"]["detail"]
    clauses = {c["clause"]: c["status"] for c in summary["hypothesis"]}
    assert clauses["lost_acknowledged == 0"] == "inconclusive"
    assert clauses["oversell == 0"] == "pass"
    assert summary["sold"] is None and summary["acknowledged"] == 30
    xml = junit.read_text()
    assert 'message="n/a: needs the orders (or buyers) read as truth' in xml
    html = (out / "report.html").read_text()
    assert "– n/a" in html and "needs the stock read as truth" in html


# --- the probe ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["node-lock", "node-naive", "pg-atomic", "pg-naive"])
def test_probe_prints_every_answer_with_its_rule_and_the_truth(name: str) -> None:
    proc = run_flashlab("target", "probe", str(TARGETS / f"{name}.yaml"), "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    outcomes = [a["outcome"] for a in result["answers"]]
    assert outcomes == ["ok", "ok", "already_purchased", "ok", "sold_out", "sold_out"]
    assert all(a["rule"] is not None for a in result["answers"])
    assert [a["remaining"] for a in result["answers"][:2]] == [2, 1]
    assert result["truth"]["stock_remaining"] == 0 and len(result["truth"]["orders"]) == 3
    assert result["problem"] is None


def test_probe_of_a_file_whose_rules_match_nothing_exits_2_after_the_table(tmp_path: Path) -> None:
    data = yaml.safe_load((TARGETS / "pg-atomic.yaml").read_text())
    data["answers"] = [{"status": 418, "outcome": "ok"}]
    _absolute_paths(data)
    path = tmp_path / "never.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = run_flashlab("target", "probe", str(path), timeout=240)
    assert_one_line_error(proc, "answers: no rule matched any answer", code=2)
    assert "no rule -> unknown" in proc.stdout


def _absolute_paths(data: dict[str, Any]) -> None:
    """A copy of a shipped target file, written elsewhere, still finds its backend."""
    for entry in [*(data.get("setup") or []), *(data.get("start") or [])]:
        if entry.get("cwd"):
            entry["cwd"] = str((TARGETS / entry["cwd"]).resolve())
        if isinstance(entry.get("command"), list):
            entry["command"] = [c.replace("{dir}", str(TARGETS)) for c in entry["command"]]


# --- bad input: one line, exit 2, nothing left running ------------------------------------------


def test_an_unreachable_base_url_is_one_line_exit_2(tmp_path: Path, free_port: int) -> None:
    path = tmp_path / "nowhere.yaml"
    data = yaml.safe_load((TARGETS / "node-lock.yaml").read_text())
    for key in ("setup", "start"):
        data.pop(key)
    data["base_url"] = f"http://127.0.0.1:{free_port}"
    data["truth"]["redis"]["url"] = f"redis://127.0.0.1:{free_port}"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert_one_line_error(
        run_flashlab("target", "probe", str(path), timeout=60), "base_url", code=2
    )
    proc = run_flashlab(
        "run", str(EXPERIMENTS / "node-lock.yaml"), "--target-file", str(path), "--out",
        str(tmp_path / "run"), timeout=60,
    )  # fmt: skip
    assert_one_line_error(proc, "base_url", "does not answer", code=2)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["complete"] is False


def test_a_failing_truth_query_is_one_line_naming_truth(tmp_path: Path) -> None:
    data = yaml.safe_load((TARGETS / "pg-atomic.yaml").read_text())
    data["truth"]["sql"]["orders"] = "SELECT order_id FROM no_such_table"
    _absolute_paths(data)
    path = tmp_path / "badsql.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = run_flashlab("target", "probe", str(path), timeout=240)
    assert_one_line_error(proc, "truth.sql", "no_such_table", code=2)


def test_a_start_command_that_exits_early_is_one_line(tmp_path: Path) -> None:
    data = yaml.safe_load((TARGETS / "node-lock.yaml").read_text())
    _absolute_paths(data)
    data["start"][1]["env"]["MODE"] = "bogus"  # the server refuses it and exits 2 at once
    path = tmp_path / "exits.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert_one_line_error(
        run_flashlab("target", "probe", str(path), timeout=120), "api", "exited during startup"
    )
    before = set(procs.alive_pids())  # in this process too: the redis it started is stopped
    with pytest.raises(StackStartError, match="MODE must be"):
        probe(load_target(path))
    assert set(procs.alive_pids()) <= before
    proc = run_flashlab(
        "run", str(EXPERIMENTS / "node-lock.yaml"), "--target-file", str(path), "--out",
        str(tmp_path / "run"), timeout=120,
    )  # fmt: skip
    assert_one_line_error(proc, "api", "exited during startup", code=4)  # infrastructure


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"answerz": []}, "answerz: unknown key (did you mean 'answers'?)"),
        ({"base_url": "http://127.0.0.1:{prot}"}, "base_url: unknown placeholder {prot}"),
        (
            {"answers": [{"status": 200, "outcome": "ok", "order_id": "$.data["}]},
            "answers.0.order_id: invalid JSONPath",
        ),
    ],
)
def test_a_bad_target_file_is_refused_before_anything_starts(
    tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    data = yaml.safe_load((TARGETS / "node-lock.yaml").read_text()) | change
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for args in (("target", "probe", str(path)), ("validate", str(path))):
        assert_one_line_error(run_flashlab(*args, timeout=60), needle, code=2)
    proc = run_flashlab("run", str(EXPERIMENTS / "node-lock.yaml"), "--target-file", str(path),
                        "--out", str(tmp_path / "run"), timeout=60)  # fmt: skip
    assert_one_line_error(proc, needle, code=2)
    assert not (tmp_path / "run").exists()


def test_a_remote_base_url_is_refused_without_allow_remote(tmp_path: Path) -> None:
    """A target the lab does not start may live elsewhere only on purpose: nothing is sent."""
    data = yaml.safe_load((TARGETS / "node-lock.yaml").read_text())
    for key in ("setup", "start"):
        data.pop(key)
    data["base_url"] = "http://192.0.2.10:8080"  # TEST-NET-1: never routed
    data["truth"]["redis"]["url"] = "redis://192.0.2.10:6379"
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = run_flashlab(
        "run", str(EXPERIMENTS / "node-lock.yaml"), "--target-file", str(path), "--out",
        str(tmp_path / "run"), timeout=60,
    )  # fmt: skip
    assert_one_line_error(proc, "base_url", "not a loopback address", "--allow-remote", code=2)
    assert not (tmp_path / "run").exists()


def test_a_fault_whose_role_the_target_lacks_is_refused_at_load(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    data = yaml.safe_load((EXPERIMENTS / "pg-worker-kill.yaml").read_text())
    data["target"] = str(TARGETS / "pg-atomic.yaml")
    data["faults"] = [{"fault": "redis-kill", "at_s": 1.0, "duration_s": 1.0}]
    exp.write_text(yaml.safe_dump(data))
    proc = run_flashlab("validate", str(exp), timeout=60)
    assert_one_line_error(proc, "faults.0", "role redis", "db, worker")


def test_the_target_schema_is_printed_and_validates_the_shipped_files() -> None:
    import jsonschema

    proc = run_flashlab("schema", "target", timeout=60)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    for path in sorted(TARGETS.glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
        load_target(path)


@pytest.fixture
def free_port() -> int:
    from flashlab.system.platforms import free_port as pick

    return pick()
