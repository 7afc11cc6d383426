"""Database faults on a backend's own database (a target's process with role db): a graceful restart and a crash.

Evidence is the process itself: the old and new PID, how long it took to stop and to be ready
again (the target's `ready` check, e.g. the database's port accepting connections).
"""

from __future__ import annotations

import signal
from typing import Literal

from pydantic import Field

from flashlab.chaos.faults.fault import FaultParams
from flashlab.chaos.faults.fault import StopStartFault

DB = "db"  # the component kind of a target's process with role db
SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "QUIT": signal.SIGQUIT}


class DbRestartParams(FaultParams):
    signal: Literal["TERM", "INT", "QUIT"] = Field(
        default="INT",
        description="the database's graceful stop: INT is PostgreSQL's fast shutdown (its TERM "
        "waits for every client to leave), TERM suits MySQL",
    )


class DbRestart(StopStartFault):
    """Graceful database restart: stop it with `signal` (committed work is kept, open
    transactions roll back), started again after duration_s."""

    name = "db-restart"
    role = "db"
    component = DB
    sig = signal.SIGINT
    stop_what = "the database to stop after signal"
    Params = DbRestartParams
    params: DbRestartParams  # what Params validated (Fault.__init__)

    def stop_signal(self) -> int:
        return SIGNALS[self.params.signal]


class DbKill(StopStartFault):
    """Database crash: SIGKILL to it and its backends (no shutdown, crash recovery at the next
    start), started again after duration_s."""

    name = "db-kill"
    role = "db"
    component = DB
    sig = signal.SIGKILL
    stop_what = "the database to stop"
