"""The stack a run loads (`RunStack`): started for one run or shared by several, and stopped.

Three kinds: the lab's own platform (flashlab.system.platforms, local or Compose, with the fault
proxy its faults need), a backend a target file describes (its own processes or Compose file,
flashlab.system.targets), or an already-running stack (`--target`, a `Target`), which nothing
here starts or stops. `shared_stack` keeps one stack up for a trial set or a sweep group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from flashlab.chaos.faults import needs_proxy
from flashlab.chaos.faults import network_links
from flashlab.core.errors import UserError
from flashlab.core.isolation import Isolation
from flashlab.core.isolation import IsolationError
from flashlab.core.isolation import resolve
from flashlab.core.platform import Platform
from flashlab.core.platform import StackConfig
from flashlab.core.platform import StackInfo
from flashlab.core.target import TargetSpec
from flashlab.lab.experiment import Experiment
from flashlab.lab.remote import Target
from flashlab.system.platforms import get_platform
from flashlab.system.targets import start_target
from flashlab.system.targets import target_health


@dataclass
class RunStack:
    """The stack a run loads: where to send, how to reset and read it, what to record of it."""

    base_url: str  # where the shoppers send (a target's client proxy, when it has one)
    redis_url: str
    admin_token: str
    platform: Platform | None = None  # when the lab started it (None: an external --target)
    info: StackInfo | None = None
    public: dict[str, Any] = field(default_factory=dict)  # for the manifest (no token)
    # A backend the lab did not build (flashlab.core.target): its file, its placeholders'
    # values (ports, workdir, ...) and its own base URL (reset and truth calls, health).
    target: TargetSpec | None = None
    values: dict[str, Any] = field(default_factory=dict)
    own_url: str = ""

    @property
    def ready_url(self) -> str | None:
        """What says "serving" before the first fault: /readyz, or the target's health."""
        if self.target is None:
            return self.base_url.rstrip("/") + "/readyz"

        return target_health(self.target, self.values)


def resolve_isolation(exp: Experiment, target: Target | None) -> Isolation:
    """The run's CPU split from `isolation:` (bad input -> UserError naming the field)."""
    spec = exp.isolation
    try:
        iso = resolve(spec.mode, spec.stack_cpus, spec.load_cpus)
    except IsolationError as exc:
        raise UserError(f"isolation: {exc}") from None
    if target is not None and iso.applied:
        # Not our stack: only the load is pinned here; pin the stack where it was started
        # (`flashlab stack up` takes the same --isolation/--cpus and the same auto split).
        iso = replace(iso, reason="stack external (--target): only the load was pinned here")
    return iso


@contextmanager
def shared_stack(exp: Experiment, target: Target | None) -> Iterator[RunStack]:
    """One stack for several runs (repeated trials): pass it to `execute(req, stack=...)`.

    Each run still resets the product first; the stack is stopped when the block ends.
    """
    with open_stack(exp, target, resolve_isolation(exp, target).stack) as stack:
        yield stack


@contextmanager
def open_stack(
    exp: Experiment, target: Target | None, cpus: list[int] | None = None
) -> Iterator[RunStack]:
    """The run's stack for the block: a target file's backend, an external `--target` (started
    and stopped by nobody here), or the lab's own platform, stopped when the block ends."""
    if exp.target is not None:
        with _target_stack(exp.target, exp, cpus) as stack:
            yield stack
        return
    if target is not None:
        yield RunStack(
            target.base_url,
            target.redis_url,
            target.admin_token,
            public={"platform": "external", "base_url": target.base_url},
        )
        return

    config = StackConfig(
        workers=exp.stack.workers,
        durability=exp.stack.durability,
        redis_timeout_ms=exp.stack.redis_timeout_ms,
        prometheus=exp.stack.prometheus,
        proxy=needs_proxy([f.fault for f in exp.faults]),
        cpus=cpus,
        ray=wants_stack_ray(exp),
    )
    platform = get_platform(exp.stack.platform, config)
    try:
        info = platform.start()
        public = info.to_dict()
        public.pop("admin_token", None)
        yield RunStack(info.base_url, info.redis_url, info.admin_token, platform, info, public)
    finally:
        platform.stop()


@contextmanager
def _target_stack(spec: TargetSpec, exp: Experiment, cpus: list[int] | None) -> Iterator[RunStack]:
    """A backend the lab did not build: its own processes or Compose file, started and stopped
    here (or nothing, when its file has no `start:`), with the fault proxies its faults need."""
    config = StackConfig(prometheus=False, cpus=cpus)
    platform = start_target(spec, config, network_links(exp.faults))
    try:
        info = platform.start()
        public = info.to_dict() | {"platform": info.platform, "target": spec.name}
        public.pop("admin_token", None)
        yield RunStack(
            info.base_url,
            info.redis_url,
            "",
            platform,
            info,
            public,
            target=spec,
            values=dict(platform.values),
            own_url=platform.base_url(),
        )
    finally:
        platform.stop()


def wants_stack_ray(exp: Experiment) -> bool:
    """`--platform compose --engine ray` (no ray_address): the stack brings its own Ray nodes."""
    return (
        exp.stack.platform == "compose"
        and exp.engine.kind == "ray"
        and exp.engine.ray_address is None
    )


def load_route(stack: RunStack, exp: Experiment, load_cpus: list[int] | None) -> dict[str, Any]:
    """Where the shoppers send and which cluster runs them: the stack's own Ray nodes (Compose
    `ray` profile: Ray Client on 127.0.0.1, nginx by service name) or this machine's defaults."""
    extra = stack.info.extra if stack.info is not None else {}
    if "ray_address" in extra:
        # The actors run in containers: this machine's CPU split does not apply to them.
        return {
            "base_url": extra["ray_base_url"],
            "ray_address": extra["ray_address"],
            "cpus": None,
        }
    return {"base_url": stack.base_url, "ray_address": exp.engine.ray_address, "cpus": load_cpus}
