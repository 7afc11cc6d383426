"""What a run tells its listeners: the phases it goes through and the events between them.

In the manner of Chaos Toolkit's `RunEventHandler` (chaoslib/run.py): a run announces each
phase as it starts and finishes, the load's start and progress, an abort, and its outcome to
every handler registered on the request (`RunRequest.events`). The CLI's live display
(flashlab.commands.display.LiveRun), the trial-set runner (flashlab.lab.trials) and the guards
(flashlab.lab.guards.watch.RunWatch) all listen to these same events.

A handler subclasses `RunEvents` and overrides only what it listens to; every method is a no-op
by default. Handlers run in the run's threads (`progress` on the engine's), in registration
order; a handler that raises fails the run, as a failing step would - keep them small.

`Announcer` is the run's side: like Chaos Toolkit's `EventHandlerRegistry`, one typed method
per event that calls the same-named method of every handler, so a misspelt or mistyped event is
an error for mypy (and an AttributeError at run time), never silently sent nowhere.

Phases, in order (`Phase.name`; the label is what the user reads):

    stack     starting the stack (or "on the shared stack" for trials / --target)
    capacity  probing the machine's capacity before the load (flashlab.lab.capacity)
    reset     resetting the product
    load      running the shoppers (guards and faults alongside)
    evidence  faults.parquet, truth.json, metrics.json
    judge     summary.json from the files alone
    report    report.html (only when the request asks for it)

A trial set announces its own phases around its runs: `shared-stack` and `judge-set`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flashlab.lab.outcome import Abort
from flashlab.lab.outcome import RunOutcome

if TYPE_CHECKING:  # a type only: importing the events stays cheap
    from flashlab.simulator.progress import Progress


@dataclass(frozen=True)
class Phase:
    """One step of a run: a stable `name` for code, a `label` for people."""

    name: str
    label: str


class RunEvents:
    """Base class of a run's event handlers: override what you listen to (all no-ops here)."""

    def phase_started(self, phase: Phase) -> None:
        """A phase begins."""

    def phase_finished(self, phase: Phase, error: BaseException | None) -> None:
        """A phase ended: `error` is None when it completed, else what stopped it."""

    def load_started(self, t0_ns: int) -> None:
        """The engine starts driving shoppers at `t0_ns` (the run's time zero)."""

    def progress(self, snapshot: Progress) -> None:
        """A snapshot of the load (flashlab.simulator.progress.Progress): periodically, and at its end."""

    def note(self, text: str) -> None:
        """A one-line note for the user (e.g. CPU isolation requested but not applied)."""

    def aborted(self, abort: Abort) -> None:
        """The load was stopped early (a guard or Ctrl-C); the run is still judged."""

    def finished(self, outcome: RunOutcome) -> None:
        """The run directory is complete (`complete: true`)."""

    def failed(self, error: BaseException) -> None:
        """The run stopped with an error; its directory stays `complete: false` and says why."""

    # Trial sets (flashlab.lab.trials) announce these around each of their runs.

    def trial_started(self, index: int, of: int, seed: int) -> None:
        """Trial `index` (1-based) of `of` starts with `seed`."""

    def trial_finished(self, index: int, outcome: RunOutcome) -> None:
        """Trial `index` wrote its complete run directory."""


class NotesToStderr(RunEvents):
    """The default listener: notes go to stderr, so `--json` on stdout stays one document."""

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)


class Announcer:
    """Sends each event to every handler, in registration order: one method per RunEvents event,
    with its signature. A handler that raises stops the event there and the error propagates
    (the handlers after it do not hear it): the run fails, as the module doc says."""

    def __init__(self, handlers: Iterable[RunEvents]) -> None:
        self.handlers = list(handlers)

    def add(self, handler: RunEvents) -> None:
        self.handlers.append(handler)

    def listens(self, event: str) -> bool:
        """Whether any handler overrides `event` (the engines skip progress nobody reads)."""
        base = getattr(RunEvents, event)
        return any(getattr(type(h), event, base) is not base for h in self.handlers)

    def _each(self) -> list[RunEvents]:
        # A copy: a handler added while an event is announced hears the next one, not this one.
        return list(self.handlers)

    def phase_started(self, phase: Phase) -> None:
        for handler in self._each():
            handler.phase_started(phase)

    def phase_finished(self, phase: Phase, error: BaseException | None) -> None:
        for handler in self._each():
            handler.phase_finished(phase, error)

    def load_started(self, t0_ns: int) -> None:
        for handler in self._each():
            handler.load_started(t0_ns)

    def progress(self, snapshot: Progress) -> None:
        for handler in self._each():
            handler.progress(snapshot)

    def note(self, text: str) -> None:
        for handler in self._each():
            handler.note(text)

    def aborted(self, abort: Abort) -> None:
        for handler in self._each():
            handler.aborted(abort)

    def finished(self, outcome: RunOutcome) -> None:
        for handler in self._each():
            handler.finished(outcome)

    def failed(self, error: BaseException) -> None:
        for handler in self._each():
            handler.failed(error)

    def trial_started(self, index: int, of: int, seed: int) -> None:
        for handler in self._each():
            handler.trial_started(index, of, seed)

    def trial_finished(self, index: int, outcome: RunOutcome) -> None:
        for handler in self._each():
            handler.trial_finished(index, outcome)

    @contextlib.contextmanager
    def phase(self, phase: Phase) -> Iterator[Phase]:
        """`with events.phase(p):` announces the start, then the finish with its error (if any)."""
        try:
            self.phase_started(phase)
            yield phase
        except BaseException as exc:
            self.phase_finished(phase, exc)
            raise
        self.phase_finished(phase, None)
