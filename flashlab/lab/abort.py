"""The run's cooperative stop (`AbortSwitch`): tripped once by a guard or Ctrl-C, heard by all.

The first trip wins: it records the `Abort` (flashlab.lab.outcome), sets `event` - which the
engines watch and stop the load on (in-flight attempts end as `info`, shoppers not yet started
are not recorded) - and runs the hooks once (the fault scheduler's halt recovers every active
fault at once). The run directory is then written as usual, with manifest["aborted"].
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Literal

from flashlab.lab.outcome import Abort


class AbortSwitch:
    """One run's cooperative stop: the first trip wins, sets `event` and runs the hooks once.

    `event` is what the engines watch (flashlab.simulator.engines.engine.Engine.run's `stop`).
    `armed` is True while the load runs: only then does Ctrl-C abort instead of hard-stopping.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.abort: Abort | None = None
        self.t0_ns: int | None = None
        self.armed = False
        self._hooks: list[Callable[[], object]] = []
        self._lock = threading.RLock()  # reentrant: trip() may run in a signal handler

    def arm(self, t0_ns: int) -> None:
        self.t0_ns, self.armed = t0_ns, True

    def disarm(self) -> None:
        self.armed = False

    def on_trip(self, hook: Callable[[], object]) -> None:
        with self._lock:
            self._hooks.append(hook)
            tripped = self.abort is not None
        if tripped:
            hook()

    def trip(self, by: Literal["guard", "interrupt"], guard: str | None = None) -> bool:
        """Stop the run early; False if it was already stopped."""
        with self._lock:
            if self.abort is not None:
                return False
            t_s = round((time.time_ns() - (self.t0_ns or time.time_ns())) / 1e9, 3)
            what = f"guard {guard!r}" if by == "guard" else "interrupt (Ctrl-C)"
            self.abort = Abort(by, guard, t_s, f"aborted by {what} at t={t_s:.2f}s")
            hooks = list(self._hooks)
        self.event.set()
        for hook in hooks:
            with contextlib.suppress(Exception):  # a hook must never stop the others
                hook()
        return True
