"""The lab's exit codes and the one user-facing error: what every layer may raise, what the CLI prints.

Exit codes mean one thing each, on every command (README "Exit codes", docs/CI.md):

    0  pass          the steady-state hypothesis holds (or the command did what it was asked)
    1  fail          the hypothesis does not hold, a safety check failed, the run was aborted
                     by a guard or Ctrl-C, or a compare gate found a regression
    2  bad input     a flag, an experiment file or a run directory is wrong; one line names it
    3  inconclusive  a timing clause could not be judged: the measurement was untrusted
    4  infra error   the stack or Docker could not start, a component died outside a fault
  130  interrupted   a hard stop (second Ctrl-C, SIGTERM) before a verdict existed
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERDICT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INCONCLUSIVE = 3
EXIT_INFRA = 4
EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT: no verdict, the run is left incomplete

VERDICT_EXIT = {"pass": EXIT_OK, "fail": EXIT_VERDICT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}
EXIT_CODES_HELP = (
    "Exit codes: 0 pass, 1 fail (hypothesis does not hold, or the run was aborted), 2 bad input, "
    "3 inconclusive (timings untrusted), 4 infrastructure error (stack or Docker could not start)."
)


def verdict_exit_code(verdict: str | None) -> int:
    """pass -> 0, fail -> 1, inconclusive -> 3; an unknown or missing verdict is no pass (1)."""
    return VERDICT_EXIT.get(str(verdict), EXIT_VERDICT_FAIL)


def verdict_unexpected(verdict: str, expected: str) -> bool:
    """A matrix cell's rule: an error (no real verdict), or a verdict other than the expected
    one ("any" accepts every verdict)."""
    if verdict not in ("pass", "fail", "inconclusive"):
        return True
    return expected != "any" and verdict != expected


class UserError(Exception):
    """Bad input or environment: printed as one line, exit 2 (or `code`), never a traceback."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
