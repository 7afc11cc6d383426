"""The records a run hands its listeners: how it ended (`RunOutcome`) and who stopped it early (`Abort`).

They sit below both the run (flashlab.lab.run) and its events (flashlab.lab.events), so the
event protocol names them without importing the modules that announce them.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal


@dataclass(frozen=True)
class Abort:
    """manifest["aborted"]: who stopped the run early, when (seconds after load start), why."""

    by: Literal["guard", "interrupt"]
    guard: str | None
    t_s: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunOutcome:
    """A complete run directory, its summary and the exit code its verdict maps to."""

    run_dir: Path
    summary: dict[str, Any]
    exit_code: int
