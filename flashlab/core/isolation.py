"""CPU isolation: which CPUs the stack gets and which the load generator gets, and pinning to them.

A lab whose generator competes with the system under test for the same cores measures the
competition, not the system (measured on this lab's 2-core host: unpinned, p99 CV ~10% and an
overloaded generator every run; pinned by hand, CV < 1%; docs/SIMULATOR.md). `resolve` decides the split once per run; the local platform pins every
process it spawns to `stack_cpus` (set in the child before exec, so nginx's forked workers inherit
it), Compose writes `cpuset`, and engines run inside `pinned(load_cpus)`.

Modes: `auto` (default) splits the CPUs this process may use (`os.sched_getaffinity(0)`) in two,
the stack first (it gets the extra CPU on an odd count); `off` shares every CPU; `manual` takes
explicit lists. Where the split is impossible (one CPU) or the kernel refuses affinity, the run
goes on unpinned and the record says `applied: false` with the reason - it never pretends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from typing import Literal
from typing import get_args

from flashlab.core.errors import UserError

Mode = Literal["auto", "off", "manual"]
MODES: tuple[str, ...] = get_args(Mode)


class IsolationError(UserError, ValueError):
    """An impossible split (bad input): one line, the caller prefixes the flag or field."""


@dataclass(frozen=True)
class Isolation:
    """The decided split, exactly what manifest.json / summary.json record under `isolation`."""

    mode: str
    requested: bool
    applied: bool
    stack_cpus: tuple[int, ...]
    load_cpus: tuple[int, ...]
    reason: str | None = None

    @property
    def stack(self) -> list[int] | None:
        """CPUs to pin the stack to, or None (no pinning)."""
        return list(self.stack_cpus) if self.applied else None

    @property
    def load(self) -> list[int] | None:
        """CPUs to pin the load generator to, or None (no pinning)."""
        return list(self.load_cpus) if self.applied else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stack_cpus"] = list(self.stack_cpus)
        data["load_cpus"] = list(self.load_cpus)
        return data

    def describe(self) -> str:
        return describe(self.to_dict())


def describe(record: Mapping[str, Any] | None) -> str:
    """One line for the CLI and the report from a recorded split, e.g. 'CPU split: stack 0 · load 1'."""
    if not record:
        return "CPU split: not recorded (run made before isolation existed)"
    stack, load = record.get("stack_cpus") or [], record.get("load_cpus") or []
    if record.get("applied"):
        note = f" ({record['reason']})" if record.get("reason") else ""
        return f"CPU split: stack {format_cpus(stack)} · load {format_cpus(load)}{note}"
    if not record.get("requested"):
        return f"CPU split: off (stack and load share CPUs {format_cpus(stack)})"
    return f"CPU split: NOT applied - {record.get('reason')}"


def format_cpus(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus) or "-"


def available_cpus() -> list[int]:
    """The CPUs this process may run on (respects taskset / cgroup cpusets)."""
    return sorted(os.sched_getaffinity(0))


def parse_cpu_list(text: str) -> list[int]:
    """'0', '0,2', '0-3', '0-1,4' -> sorted CPU numbers; IsolationError on anything else."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise IsolationError(f"{text!r} is not a CPU list (e.g. 0 or 0,2 or 0-3)") from None
        if first < 0 or last < first:
            raise IsolationError(f"{part!r} is not a CPU range")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def parse_split(text: str) -> tuple[list[int], list[int]]:
    """'STACK:LOAD', e.g. '0:1' or '0-1:2-3' -> (stack, load)."""
    stack, sep, load = text.partition(":")
    if not sep:
        raise IsolationError(f"{text!r} is not STACK:LOAD (e.g. 0:1)")
    return parse_cpu_list(stack), parse_cpu_list(load)


def check_split(stack: Sequence[int], load: Sequence[int], available: Collection[int]) -> None:
    """Raise IsolationError unless both sets are non-empty, disjoint and available here."""
    for what, cpus in (("stack", stack), ("load", load)):
        if not cpus:
            raise IsolationError(f"the {what} CPU set is empty")
        missing = sorted(set(cpus) - set(available))
        if missing:
            raise IsolationError(
                f"{what} CPU(s) {format_cpus(missing)} not available "
                f"(this process may use {format_cpus(sorted(available))})"
            )
    shared = sorted(set(stack) & set(load))
    if shared:
        raise IsolationError(f"stack and load share CPU(s) {format_cpus(shared)}")


def auto_split(available: Sequence[int]) -> tuple[list[int], list[int]]:
    """Half and half, the stack first and with the odd CPU (it runs nginx, Redis and N workers)."""
    cpus = sorted(available)
    half = (len(cpus) + 1) // 2
    return cpus[:half], cpus[half:]


def resolve(
    mode: str = "auto",
    stack_cpus: Sequence[int] | None = None,
    load_cpus: Sequence[int] | None = None,
    available: Sequence[int] | None = None,
) -> Isolation:
    """Decide the split. Bad input raises IsolationError; impossible-here returns applied=False."""
    cpus = sorted(available if available is not None else available_cpus())
    if mode not in MODES:
        raise IsolationError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "off":
        return Isolation("off", False, False, tuple(cpus), tuple(cpus))
    if mode == "manual":
        if stack_cpus is None or load_cpus is None:
            raise IsolationError("mode manual needs both stack_cpus and load_cpus")
        check_split(stack_cpus, load_cpus, cpus)
        stack, load = sorted(stack_cpus), sorted(load_cpus)
    else:
        if len(cpus) < 2:
            reason = (
                f"only {len(cpus)} CPU available ({format_cpus(cpus)}); stack and load share it"
            )
            return Isolation("auto", True, False, tuple(cpus), tuple(cpus), reason)
        stack, load = auto_split(cpus)
    refused = affinity_refused(stack, load)
    if refused:
        return Isolation(mode, True, False, tuple(cpus), tuple(cpus), refused)
    return Isolation(mode, True, True, tuple(stack), tuple(load))


def affinity_refused(*cpu_sets: Sequence[int]) -> str | None:
    """Try each set on this thread and restore; the kernel's refusal as one line, or None."""
    before = os.sched_getaffinity(0)
    try:
        for cpus in cpu_sets:
            os.sched_setaffinity(0, cpus)
    except OSError as exc:
        return f"sched_setaffinity refused: {exc.strerror or exc}"
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, before)
    return None


def pin_self(cpus: Collection[int] | None) -> None:
    """Pin the calling thread (in a fresh child: the whole process) to `cpus`; None = no-op.

    Used between fork and exec and at a worker's start; a refusal leaves the process unpinned
    (resolve() already probed that affinity works, so this is only a race with a cpuset change)."""
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)


def _thread_ids() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def pin_process(cpus: Collection[int] | None) -> dict[int, set[int]]:
    """Pin every thread of this process to `cpus`; returns each thread's previous set.

    Linux affinity is per thread: pinning only the caller would leave the metrics scraper, the
    progress display (and children forked from other threads) where they were. Threads started
    afterwards inherit the pin from their creator. None = no-op."""
    saved: dict[int, set[int]] = {}
    if not cpus:
        return saved
    for tid in _thread_ids():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
    return saved


@contextlib.contextmanager
def pinned(cpus: Collection[int] | None) -> Iterator[None]:
    """Pin the whole process to `cpus` for the block, then give each thread its old set back."""
    saved = pin_process(cpus)
    try:
        yield
    finally:
        for tid, before in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, before)
