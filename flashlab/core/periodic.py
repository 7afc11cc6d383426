"""`PeriodicThread`: a daemon thread that does one small thing every N seconds until stopped.

The lab's background samplers (the guards' evaluation, the benchmarks' process-tree monitor)
are this one loop; each keeps only what it does per tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def _never() -> bool:
    return False


class PeriodicThread:
    """Calls `tick()` every `every_s` seconds (the first after one period) until `stop()`, or
    until `done()` is true. `stop()` is safe before `start()` and more than once."""

    def __init__(
        self,
        name: str,
        every_s: float,
        tick: Callable[[], object],  # its result is not used
        done: Callable[[], bool] = _never,
        join_timeout_s: float = 10.0,
    ) -> None:
        self.every_s = every_s
        self._tick, self._done = tick, done
        self._join_timeout_s = join_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> PeriodicThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=self._join_timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s) and not self._done():
            self._tick()
