"""The Announcer (flashlab.lab.events) sends each RunEvents event, by its typed method, to every
handler in order; an event it does not declare is an error for mypy and at run time."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

from flashlab.lab.events import Announcer
from flashlab.lab.events import Phase
from flashlab.lab.events import RunEvents
from flashlab.lab.outcome import Abort
from flashlab.lab.outcome import RunOutcome

ROOT = Path(__file__).resolve().parent.parent


def _events() -> list[str]:
    return [name for name, _ in inspect.getmembers(RunEvents, inspect.isfunction)]


class Log(RunEvents):
    """Records every event it hears as (its name, the event, repr of each argument)."""

    def __init__(self, name: str, log: list[tuple[str, ...]]) -> None:
        self.name, self.log = name, log


def _recorder(event: str) -> Any:
    def record(self: Log, *args: Any) -> None:
        self.log.append((self.name, event, *map(repr, args)))

    return record


for _event in _events():
    setattr(Log, _event, _recorder(_event))


def test_the_announcer_declares_every_event_with_its_signature() -> None:
    assert len(_events()) == 10
    for event in _events():
        ours = getattr(Announcer, event)
        assert inspect.signature(ours) == inspect.signature(getattr(RunEvents, event)), event
    assert "__getattr__" not in vars(Announcer)  # nothing dispatched by name


def test_each_event_reaches_every_handler_in_order_with_its_arguments() -> None:
    log: list[tuple[str, ...]] = []
    announcer = Announcer([Log("a", log), Log("b", log)])
    phase = Phase("load", "running the shoppers")
    outcome = RunOutcome(Path("run"), {"verdict": "pass"}, 0)
    calls: dict[str, tuple[Any, ...]] = {
        "phase_started": (phase,),
        "phase_finished": (phase, None),
        "load_started": (123,),
        "progress": ("snapshot",),
        "note": ("a note",),
        "aborted": (Abort("guard", "ok_rate", 1.5, "tripped"),),
        "finished": (outcome,),
        "failed": (RuntimeError("boom"),),
        "trial_started": (1, 3, 42),
        "trial_finished": (1, outcome),
    }
    assert sorted(calls) == sorted(_events())
    for event, args in calls.items():
        log.clear()
        getattr(announcer, event)(*args)
        shown = tuple(map(repr, args))
        assert log == [("a", event, *shown), ("b", event, *shown)], event


def test_an_unknown_event_is_an_attribute_error_not_a_silent_no_op() -> None:
    announcer = Announcer([RunEvents()])
    with pytest.raises(AttributeError, match="phase_begun"):
        announcer.phase_begun  # noqa: B018


def test_mypy_rejects_an_unknown_event_and_a_mistyped_argument(tmp_path: Path) -> None:
    program = (
        "from flashlab.lab.events import Announcer\n"
        "events = Announcer([])\n"
        'events.phase_begun("load")\n'
        "events.load_started('t0')\n"
        'events.note("fine")\n'
    )
    out, err, status = mypy_api.run(
        [
            "--config-file=",  # none: only this program's errors, whatever pyproject says
            f"--cache-dir={tmp_path / 'cache'}",
            "--follow-imports=silent",
            "-c",
            program,
        ]
    )
    assert status == 1, out + err
    assert '<string>:3: error: "Announcer" has no attribute "phase_begun"  [attr-defined]' in out
    assert '<string>:4: error: Argument 1 to "load_started" of "Announcer"' in out
    assert "<string>:5:" not in out
    assert "Found 2 errors" in out


def test_a_raising_handler_stops_the_event_and_propagates() -> None:
    # Today's contract (test_run_events: a failing listener fails the run): no isolation.
    log: list[tuple[str, ...]] = []

    class Broken(RunEvents):
        def note(self, text: str) -> None:
            raise RuntimeError("listener broke")

    announcer = Announcer([Log("a", log), Broken(), Log("c", log)])
    with pytest.raises(RuntimeError, match="listener broke"):
        announcer.note("hello")
    assert log == [("a", "note", "'hello'")]  # c never heard it


def test_a_handler_added_during_an_event_hears_the_next_one() -> None:
    log: list[tuple[str, ...]] = []
    late = Log("late", log)

    class Adder(RunEvents):
        def note(self, text: str) -> None:
            announcer.add(late)

    announcer = Announcer([Adder()])
    announcer.note("first")
    assert log == []
    announcer.load_started(7)
    assert log == [("late", "load_started", "7")]


def test_phase_announces_the_start_then_the_finish_with_the_error() -> None:
    log: list[tuple[str, ...]] = []
    announcer = Announcer([Log("a", log)])
    phase = Phase("judge", "judging")
    with pytest.raises(ValueError, match="bad"), announcer.phase(phase):
        raise ValueError("bad")
    assert [entry[1] for entry in log] == ["phase_started", "phase_finished"]
    assert log[1][-1] == "ValueError('bad')"


def test_listens_tells_whether_any_handler_overrides_the_event() -> None:
    class Progressed(RunEvents):
        def progress(self, snapshot: Any) -> None:
            pass

    assert not Announcer([RunEvents()]).listens("progress")
    assert Announcer([RunEvents(), Progressed()]).listens("progress")
