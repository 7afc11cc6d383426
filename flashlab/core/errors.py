"""The lab's exit codes and its one error tree: what every layer may raise, what the CLI prints.

Exit codes mean one thing each, on every command (README "Exit codes", docs/CI.md):

    0  pass          the steady-state hypothesis holds (or the command did what it was asked)
    1  fail          the hypothesis does not hold, a safety check failed, the run was aborted
                     by a guard or Ctrl-C, or a compare gate found a regression
    2  bad input     a flag, an experiment file or a run directory is wrong; one line names it
    3  inconclusive  a timing clause could not be judged: the measurement was untrusted
    4  infra error   the stack or Docker could not start, a component died outside a fault
  130  interrupted   a hard stop (second Ctrl-C, SIGTERM) before a verdict existed

Every error the lab raises is a `FlashlabError` and carries its exit code as the class attribute
`exit_code`; the CLI (flashlab.commands.errors) prints `exc.one_line()` and exits with that code.
A new error subclasses the branch that names its cause: `UserError` when the user fixes it (a
flag, a file, a run directory: exit 2), `InfraError` when the stack, Docker, a tool or a component
failed (exit 4). A class that callers or pydantic validators catch as ValueError or RuntimeError
keeps that base too, in brackets below. The tree (tests/test_error_tree.py holds it to the code):

    FlashlabError                             exit 4 unless a branch says otherwise
    ├── UserError                             exit 2: bad input, the user fixes it
    │   ├── MissingExtra                      core.extras: an optional extra is not installed
    │   ├── IsolationError [ValueError]       core.isolation
    │   ├── TargetError [ValueError]          core.target
    │   ├── RunDirError                       core.rundir
    │   │   ├── ComparisonError               analysis.compare
    │   │   ├── SweepError                    analysis.sweep_results
    │   │   └── TrialSetError                 analysis.trials
    │   ├── HypothesisError [ValueError]      analysis.hypothesis
    │   ├── NoRuns [RuntimeError]             analysis.notebook_setup: no run to read
    │   ├── ExperimentError [ValueError]      lab.experiment
    │   ├── DraftError [ValueError]           lab.target_draft
    │   ├── GuardError [ValueError]           lab.guards.grammar
    │   ├── SettingsError [ValueError]        system.settings: the API's environment
    │   ├── EntryError [ValueError]           system.platforms.compose_entry: a container's env
    │   └── TargetQueryError                  system.targets.stores: the store said no
    └── InfraError                            exit 4: the lab's machinery failed
        ├── PlatformError [RuntimeError]      core.platform; printed as "stack: <message>"
        │   ├── PlatformConfigError [UserError, ValueError]   exit 2, printed bare
        │   ├── DockerUnavailable
        │   ├── StackStartError
        │   ├── ComponentNotRunning
        │   │   └── TargetStoreError          system.targets.stores: the store did not answer
        │   └── ComposeError                  system.platforms.compose
        ├── AdminError [RuntimeError]         system.admin: an admin call failed
        ├── RawHttpError                      simulator.rawhttp: caught per request, a failure kind
        │   ├── ConnectFailed
        │   ├── RequestTimeout
        │   └── ConnectionDropped
        ├── FaultError [RuntimeError]         chaos.faults.fault: a fault could not act
        ├── NotebookError [RuntimeError]      analysis.notebooks: a notebook cell failed
        ├── WrkOutputError [ValueError]       simulator.wrk: wrk ended without its summary
        └── ToolError [RuntimeError]          bench.measured: a load generator failed

Not in the tree: system.api.errors' BadInput and RateLimited. They are the API server's reply
signals inside a request (turned into a 4xx answer by its replies), not errors of a lab command:
they never reach the CLI, so an exit code on them would mean nothing.
"""

from __future__ import annotations

from typing import ClassVar

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


class FlashlabError(Exception):
    """The root of every lab error: one line for the user, and the exit code it ends a command with."""

    exit_code: ClassVar[int] = EXIT_INFRA  # a lab error with no branch: treated as infrastructure

    def one_line(self) -> str:
        """What the CLI prints after `error: `; the message itself unless a class adds a prefix."""
        return str(self)


class UserError(FlashlabError):
    """Bad input: a flag, a file or a run directory is wrong. One line naming it, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        # One argument: the class is the exit code (a caller still passing one gets a TypeError,
        # not a message reading "('...', 4)").
        super().__init__(message)


class InfraError(FlashlabError):
    """The lab's machinery failed (the stack, Docker, a tool, a component), not the input: exit 4."""

    exit_code = EXIT_INFRA
