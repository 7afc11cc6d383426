"""The CPU-split options shared by `run`, `stack up`, `matrix` and `demo` (--isolation, --cpus).

They become the experiment's `isolation:` field (flashlab.core.isolation decides the split);
bad values are one line naming the flag, exit 2.
"""

from __future__ import annotations

from typing import Annotated
from typing import Any

import typer

from flashlab.core.errors import UserError
from flashlab.core.isolation import IsolationError
from flashlab.core.isolation import Mode
from flashlab.core.isolation import available_cpus
from flashlab.core.isolation import check_split
from flashlab.core.isolation import parse_split

ISOLATION_HELP = (
    "CPU split between stack and load generator: auto (default: half/half, stack first; "
    "1+1 on 2 cores) | off (share every CPU) | manual (with --cpus)."
)
CPUS_HELP = "Explicit split STACK:LOAD, e.g. 0:1 or 0-1:2-3 (implies --isolation manual)."

IsolationOpt = Annotated[Mode | None, typer.Option("--isolation", help=ISOLATION_HELP)]
CpusOpt = Annotated[str | None, typer.Option("--cpus", help=CPUS_HELP)]


def parse_cpus_flag(cpus: str) -> tuple[list[int], list[int]]:
    """--cpus STACK:LOAD, checked against the CPUs this process may use."""
    try:
        stack, load = parse_split(cpus)
        check_split(stack, load, available_cpus())
    except IsolationError as exc:
        raise UserError(f"--cpus: {exc}") from None
    return stack, load


def isolation_overrides(isolation: str | None, cpus: str | None) -> dict[str, Any]:
    """Experiment overrides for the two flags ({} when neither is given)."""
    if cpus is None:
        if isolation == "manual":
            raise UserError("--isolation manual needs --cpus STACK:LOAD (e.g. --cpus 0:1)")
        # The whole node: a file's manual lists must not linger under auto/off.
        return {"isolation": {"mode": isolation}} if isolation else {}
    if isolation not in (None, "manual"):
        raise UserError(f"--cpus: only with --isolation manual (got --isolation {isolation})")
    stack, load = parse_cpus_flag(cpus)
    return {"isolation": {"mode": "manual", "stack_cpus": stack, "load_cpus": load}}
