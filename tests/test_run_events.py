"""A run announces its phases and events to the handlers on the request (flashlab.lab.events),
on a real stack: the order, the load's start and progress, the outcome, and a failing listener."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flashlab.core.platform import StackInfo
from flashlab.lab.events import Phase
from flashlab.lab.events import RunEvents
from flashlab.lab.experiment import Experiment
from flashlab.lab.experiment import load_experiment
from flashlab.lab.remote import Target
from flashlab.lab.run import RunRequest
from flashlab.lab.run import execute

SMOKE = Path(__file__).resolve().parent.parent / "experiments" / "smoke.yaml"


class Recorder(RunEvents):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.progress_calls = 0

    def phase_started(self, phase: Phase) -> None:
        self.seen.append(("started", phase.name))

    def phase_finished(self, phase: Phase, error: BaseException | None) -> None:
        self.seen.append(("finished", phase.name, type(error).__name__ if error else None))

    def load_started(self, t0_ns: int) -> None:
        self.seen.append(("load_started", isinstance(t0_ns, int) and t0_ns > 0))

    def progress(self, snapshot: Any) -> None:
        self.progress_calls += 1

    def finished(self, outcome: Any) -> None:
        self.seen.append(("run_finished", outcome.summary["verdict"]))

    def failed(self, error: BaseException) -> None:
        self.seen.append(("run_failed", str(error)))


def _experiment(product_id: str) -> Experiment:
    exp = load_experiment(SMOKE)
    return exp.model_copy(update={"product": exp.product.model_copy(update={"id": product_id})})


def _request(local_stack: StackInfo, tmp_path: Path, product_id: str) -> RunRequest:
    target = Target(local_stack.base_url, local_stack.redis_url, local_stack.admin_token)
    return RunRequest(
        experiment=_experiment(product_id),
        run_dir=tmp_path / "run",
        target=target,
        write_report=False,
    )


def test_a_run_announces_its_phases_in_order(local_stack: StackInfo, tmp_path: Path) -> None:
    recorder = Recorder()
    req = _request(local_stack, tmp_path, "events-order")
    req.events.append(recorder)
    outcome = execute(req)
    assert outcome.summary["verdict"] == "pass"
    phases = [
        "stack",
        "capacity",
        "reset",
        "load",
        "evidence",
        "judge",
    ]  # no report (write_report=False)
    expected: list[tuple[str, Any]] = []
    for name in phases:
        expected.append(("started", name))
        if name == "load":
            expected.append(("load_started", True))
        expected.append(("finished", name, None))
    assert recorder.seen == [*expected, ("run_finished", "pass")]
    assert recorder.progress_calls >= 1  # the engine's final progress at least


class FailsAtEvidence(RunEvents):
    def phase_started(self, phase: Phase) -> None:
        if phase.name == "evidence":
            raise RuntimeError("listener broke at evidence")


def test_a_failing_listener_fails_the_run_with_an_honest_trace(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    recorder = Recorder()
    req = _request(local_stack, tmp_path, "events-fail")
    req.events += [recorder, FailsAtEvidence()]
    with pytest.raises(RuntimeError, match="listener broke at evidence"):
        execute(req)
    assert ("finished", "evidence", "RuntimeError") in recorder.seen
    assert recorder.seen[-1] == ("run_failed", "listener broke at evidence")
    assert ("started", "judge") not in recorder.seen
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert manifest["error"] == "RuntimeError: listener broke at evidence"
    assert (tmp_path / "run" / "history.parquet").exists()  # the evidence so far is kept
    assert not (tmp_path / "run" / "summary.json").exists()
