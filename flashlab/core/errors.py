"""The lab's exit codes and the one user-facing error: what every layer may raise, what the CLI prints.

Exit codes mean one thing each:

    0  pass             the steady-state hypothesis holds
    1  fail             it does not (or a safety check failed, the run was aborted, or a
                        compare gate found a regression)
    2  bad input        a flag, file or run directory is wrong; one line names it
    3  inconclusive     a timing clause could not be judged: the measurement was untrusted
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERDICT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INCONCLUSIVE = 3

VERDICT_EXIT = {"pass": EXIT_OK, "fail": EXIT_VERDICT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}
EXIT_CODES_HELP = "Exit codes: 0 pass, 1 fail, 2 bad input, 3 inconclusive (timings untrusted)."


def verdict_exit_code(verdict: str) -> int:
    """pass -> 0, fail -> 1, inconclusive -> 3; anything unknown counts as a failure."""
    return VERDICT_EXIT.get(verdict, EXIT_VERDICT_FAIL)


class UserError(Exception):
    """Bad input or environment: printed as one line, exit 2, never a traceback."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
