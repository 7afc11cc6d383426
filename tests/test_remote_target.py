"""--allow-remote: a non-loopback --target/--redis is refused unless the user opts in, and the
opt-in says the load plan first. Only loopback ever receives traffic here: the remote cases stop
at the decision (before any connection), the opt-in that runs is pointed at a loopback stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_flashlab

from flashlab.core.errors import UserError
from flashlab.core.platform import StackInfo
from flashlab.lab.experiment import load_experiment
from flashlab.lab.remote import Target
from flashlab.lab.remote import check_target
from flashlab.lab.remote import is_loopback_url
from flashlab.lab.remote import load_plan

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.yaml"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.9.9.9", True),
        ("http://[::1]:80", True),
        ("redis://localhost:6379/0", True),
        ("http://10.1.2.3:80", False),
        ("http://192.0.2.1", False),  # TEST-NET-1: documentation only
        ("https://staging.example", False),  # a name other than localhost could be anywhere
        ("http://[2001:db8::1]:80", False),
        ("http://0.0.0.0:80", False),
        ("http://", False),
    ],
)
def test_host_classification(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_remote_refused_without_opt_in_and_planned_with_it() -> None:
    exp = load_experiment(SMOKE)
    notes: list[str] = []
    remote = Target("http://192.0.2.1:80", "redis://192.0.2.1:6379/0", "x")
    with pytest.raises(UserError, match=r"--target: .*not a loopback.*--allow-remote"):
        check_target(exp, remote, notes.append)
    mixed = Target("http://127.0.0.1:80", "redis://192.0.2.1:6379/0", "x")
    with pytest.raises(UserError, match="--redis"):
        check_target(exp, mixed, notes.append)
    assert notes == []
    # The opt-in is a decision only: it says the plan and returns; nothing is connected here.
    check_target(
        exp, Target(remote.base_url, remote.redis_url, "x", allow_remote=True), notes.append
    )
    assert len(notes) == 1
    plan = notes[0]
    for needle in ("300 shoppers", "arrival spike", "window_s=0.5", "at most 30s", "192.0.2.1"):
        assert needle in plan, plan


def test_opt_in_never_allows_faults() -> None:
    exp = load_experiment(SMOKE).model_copy(
        update={"faults": load_experiment(ROOT / "experiments" / "redis-pause.yaml").faults}
    )
    with pytest.raises(UserError, match="faults need a stack the lab started"):
        check_target(
            exp, Target("http://192.0.2.1", "redis://192.0.2.1/0", "x", True), lambda _n: None
        )


def test_allow_remote_needs_a_target(tmp_path: Path) -> None:
    proc = run_flashlab(
        "run", str(SMOKE), "--allow-remote", "--out", str(tmp_path / "r"), timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "--allow-remote" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_allow_remote_on_loopback_prints_plan_and_runs(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    """The opt-in path end to end, aimed at the loopback session stack: plan on stderr, then a
    normal run (the plan text is the same one a remote target would get)."""
    out = tmp_path / "run"
    proc = run_flashlab(
        "run",
        str(SMOKE),
        "--target",
        local_stack.base_url,
        "--redis",
        local_stack.redis_url,
        "--admin-token",
        local_stack.admin_token,
        "--allow-remote",
        "--shoppers",
        "60",
        "--stock",
        "6",
        "--no-report",
        "--json",
        "--out",
        str(out),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "remote load plan: 60 shoppers" in proc.stderr
    assert local_stack.base_url in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "pass"
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_plan_counts_trials() -> None:
    exp = load_experiment(SMOKE).model_copy(update={"repeat": 3})
    assert "x 3 trials" in load_plan(exp, Target("http://192.0.2.1", "redis://192.0.2.1/0", "x"))
