"""The lab's exit codes and the one user-facing error: what every layer may raise, what the CLI prints.

Exit codes mean one thing each:

    0  pass             the steady-state hypothesis holds
    1  fail             it does not (or a safety check failed, or the run was aborted)

    2  bad input        a flag, file or run directory is wrong; one line names it
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERDICT_FAIL = 1
EXIT_BAD_INPUT = 2


class UserError(Exception):
    """Bad input or environment: printed as one line, exit 2, never a traceback."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
