"""Shared test fixtures: a real local stack (session and per-test), an admin client, and the
session-end check that every process the tests started is gone."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.system import procs
from flashlab.system.platforms.local import LocalPlatform

StackFactory = Callable[..., contextlib.AbstractContextManager[tuple[LocalPlatform, StackInfo]]]


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Fail the session if any PID spawned through flashlab.system.procs in this process still runs.

    Autouse + session scope: set up first, so torn down last, after every stack fixture."""
    yield
    leaked = {pid: getattr(procs.get(pid), "name", "?") for pid in procs.alive_pids()}
    procs.terminate_all(grace=2.0)  # clean up first so a failure does not leak into the machine
    assert not leaked, f"processes still running at session end (pid: name): {leaked}"


@pytest.fixture(scope="session")
def local_stack() -> Iterator[StackInfo]:
    """One small stack for the whole session: 2 workers, no persistence, no prometheus.

    Tests that reset products should use their own product ids; tests that kill or reconfigure
    components must use `make_stack` instead."""
    platform = LocalPlatform(StackConfig(workers=2, durability="none", prometheus=False))
    try:
        info = platform.start()
        yield info
    finally:
        platform.stop()


@pytest.fixture
def make_stack() -> Iterator[StackFactory]:
    """A factory for private stacks: `with make_stack(workers=2, proxy=True) as (platform, info):`.

    Keyword arguments are StackConfig fields (prometheus defaults to off here). Every stack made
    is stopped when its `with` block ends, and again (idempotently) at test teardown."""
    made: list[LocalPlatform] = []

    @contextlib.contextmanager
    def factory(**config: Any) -> Iterator[tuple[LocalPlatform, StackInfo]]:
        config.setdefault("prometheus", False)
        platform = LocalPlatform(StackConfig(**config))
        made.append(platform)
        try:
            info = platform.start()
            yield platform, info
        finally:
            platform.stop()

    try:
        yield factory
    finally:
        for platform in made:
            platform.stop()


@pytest.fixture
def admin(local_stack: StackInfo) -> Iterator[Any]:
    """`flashlab.system.admin.AdminClient` for the session stack."""
    from flashlab.system.admin import AdminClient

    client = AdminClient(local_stack.base_url, local_stack.admin_token)
    try:
        yield client
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real, complete run directory of experiments/smoke.yaml (its own stack), shared by the
    tests that need genuine lab output rather than a synthetic stand-in."""
    from flashlab.lab.experiment import load_experiment
    from flashlab.lab.run import RunRequest
    from flashlab.lab.run import execute

    experiment = load_experiment(
        Path(__file__).resolve().parent.parent / "experiments" / "smoke.yaml"
    )
    outcome = execute(
        RunRequest(experiment=experiment, run_dir=tmp_path_factory.mktemp("smoke") / "run")
    )
    assert outcome.summary["verdict"] == "pass", outcome.summary.get("hypothesis")
    return outcome.run_dir
