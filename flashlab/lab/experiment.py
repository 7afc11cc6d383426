"""Experiment files: the YAML a run is made from (stack, product, scenario, engine, faults, hypothesis, guards).

`load_experiment` validates with pydantic and turns the first error into one line that names the
field path and, where there is a fixed set, the allowed values. It takes a path or the bare name of
an experiment shipped inside the package (`smoke` = experiments/smoke.yaml, found through
importlib.resources, so it works from any directory once flashlab is installed).
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import Literal

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import ValidationInfo
from pydantic import field_validator
from pydantic import model_validator

from flashlab.analysis.hypothesis import HypothesisError
from flashlab.analysis.hypothesis import parse_clause
from flashlab.chaos.faults import fault_class
from flashlab.chaos.spec import FaultSpec
from flashlab.core.contract import ID_PATTERN
from flashlab.core.contract import RateLimit
from flashlab.core.contract import ResetRequest
from flashlab.core.contract import Strategy
from flashlab.core.errors import UserError
from flashlab.core.isolation import Mode
from flashlab.core.platform import Durability
from flashlab.core.target import TargetError
from flashlab.core.target import TargetSpec
from flashlab.core.target import load_target
from flashlab.core.validation import first_error
from flashlab.core.validation import read_yaml
from flashlab.lab.guards.grammar import GuardError
from flashlab.lab.guards.grammar import parse_guard
from flashlab.simulator import CLIENTS
from flashlab.simulator.client import QUEUE_CLIENTS
from flashlab.simulator.client import TARGET_CLIENTS
from flashlab.simulator.engines import ENGINES
from flashlab.simulator.scenario import Scenario
from flashlab.system.platforms import PLATFORMS
from flashlab.system.strategies import STRATEGIES
from flashlab.system.strategies import needs_queue_protocol
from flashlab.system.strategies import settings_model


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StackSpec(_Model):
    platform: Annotated[str, PLATFORMS] = "local"
    workers: int = Field(default=2, ge=1, le=64)
    durability: Durability = "none"
    redis_timeout_ms: int = Field(default=500, ge=10, le=60_000)
    prometheus: bool = True


class RateLimitSpec(_Model):
    """contract.RateLimit as experiment files spell it (snake_case): the token buckets the reset
    switches on; a rate of 0 leaves that bucket off."""

    per_user_rate_per_s: float = Field(default=0.0, ge=0, le=1_000_000)
    per_user_burst: int = Field(default=1, ge=1, le=1_000_000)
    per_ip_rate_per_s: float = Field(default=0.0, ge=0, le=1_000_000)
    per_ip_burst: int = Field(default=1, ge=1, le=1_000_000)

    def contract(self) -> RateLimit:
        return RateLimit.model_validate(self.model_dump())


class ProductSpec(_Model):
    id: str = Field(default="iphone", pattern=ID_PATTERN)
    stock: int = Field(default=1_000, ge=0, le=10_000_000)
    strategy: Annotated[str, STRATEGIES] = "lua"
    price_cents: int = Field(default=99_900, ge=0)
    # Strategy settings, e.g. {naive_delay_ms: 2, lock_ttl_ms: 2000}: each key belongs to some
    # strategy's own Settings model (so one file can serve a matrix over strategies); the reset
    # sends the chosen strategy only its own keys.
    settings: dict[str, Any] = Field(default_factory=dict)
    # The per-user / per-IP token bucket any strategy may put in front of its buy (off when
    # absent), e.g. {per_user_rate_per_s: 2, per_user_burst: 2}; 429 rate_limited when empty.
    rate_limit: RateLimitSpec | None = None

    @field_validator("settings")
    @classmethod
    def _settings_known(cls, settings: dict[str, Any]) -> dict[str, Any]:
        models = {name: settings_model(name) for name in STRATEGIES}
        for key, value in settings.items():
            owners = [m for m in models.values() if key in m.model_fields]
            if not owners:
                known = sorted({f for m in models.values() for f in m.model_fields})
                near = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise ValueError(f"unknown setting {key!r} ({hint}known: {', '.join(known)})")
            for model in owners:
                try:
                    model.model_validate({key: value})
                except ValidationError as exc:
                    raise ValueError(f"{key}: {exc.errors()[0]['msg']}") from None
        return settings

    def strategy_settings(self) -> dict[str, Any]:
        """The settings the chosen strategy takes, out of `settings`."""
        own = settings_model(self.strategy).model_fields
        return {key: value for key, value in self.settings.items() if key in own}

    def reset_request(self) -> ResetRequest:
        """The admin reset that puts this product on sale, as the API's contract types it."""
        return ResetRequest(
            product_id=self.id,
            stock=self.stock,
            strategy=Strategy(self.strategy),
            price_cents=self.price_cents,
            settings=self.strategy_settings(),
            rate_limit=self.rate_limit.contract() if self.rate_limit else None,
        )


# Concurrent requests the lab's stack serves fastest, per API worker: the knee of `bench ceiling`'s
# connection sweep (16-512 connections, wrk and the lab's closed loop, 2 workers on one CPU of the
# 2-vCPU host: the purchase rate peaks at 16-64 and falls 10-45% by 256, because every process's
# CPU per request grows with the requests in flight; docs/BENCHMARKS.md). `connections: auto`
# caps the generator there, so a spike's shoppers queue in the client pool (their wait still
# counts: response time runs from the intended start), not in nginx and uvicorn.
KNEE_CONNECTIONS_PER_API_WORKER = 16


class EngineSpec(_Model):
    kind: Annotated[str, ENGINES] = "process"
    workers: int = Field(default=2, ge=1, le=256)  # processes or Ray actors
    connections: Annotated[int, Field(ge=1, le=100_000)] | Literal["auto"] = Field(
        default="auto",
        description="Connections per generator worker; auto = the stack's knee "
        f"({KNEE_CONNECTIONS_PER_API_WORKER} per API worker, shared by the generator's workers)",
    )
    client: Annotated[str, CLIENTS] = "aiohttp"
    ray_address: str | None = None

    @field_validator("connections", mode="before")
    @classmethod
    def _whole_number_or_auto(cls, value: Any) -> Any:
        # One readable line instead of pydantic's error per member of the union.
        if value == "auto" or (type(value) is int and 1 <= value <= 100_000):
            return value
        raise ValueError(f"must be a whole number from 1 to 100000, or auto (got {value!r})")


class IsolationSpec(_Model):
    """The CPU split between the stack and the load generator (flashlab.core.isolation)."""

    mode: Mode = "auto"  # auto: half/half, stack first; off: share
    stack_cpus: list[int] | None = None  # manual only
    load_cpus: list[int] | None = None  # manual only

    @model_validator(mode="after")
    def _lists(self) -> IsolationSpec:
        lists = (self.stack_cpus, self.load_cpus)
        if self.mode == "manual":
            if None in lists:
                raise ValueError("mode manual needs both stack_cpus and load_cpus")
            for name, cpus in (("stack_cpus", self.stack_cpus), ("load_cpus", self.load_cpus)):
                if not cpus or min(cpus) < 0:
                    raise ValueError(f"{name}: must be a non-empty list of CPU numbers >= 0")
            shared = sorted(set(self.stack_cpus or ()) & set(self.load_cpus or ()))
            if shared:
                raise ValueError(f"stack_cpus and load_cpus share CPU(s) {shared}")
        elif lists != (None, None):
            raise ValueError(f"stack_cpus/load_cpus need mode manual (mode is {self.mode})")
        return self


class CapacitySpec(_Model):
    """The capacity probe before the load (flashlab.lab.capacity): how long each of its closed
    loops runs, and whether wrk (when installed) measures the purchase path too. `capacity: off`
    skips it; a clause that needs it is then refused at load time."""

    probe_s: float = Field(default=1.5, ge=0.5, le=10.0)
    wrk: bool = True


CAPACITY_OFF = "off"


def _check_profile(text: str, profile: str | None, scenario: Scenario | None) -> None:
    """A `fairness.profiles.<profile>.` clause must name a profile of the scenario."""
    if profile is None or scenario is None:
        return
    names = [p.name for p in scenario.profiles]
    if profile not in names:
        close = difflib.get_close_matches(profile, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "no profile by that name"
        raise ValueError(
            f"{text!r} names profile {profile!r}, which scenario.profiles does not have "
            f"({hint}; profiles: {', '.join(names)})"
        )


class Experiment(_Model):
    name: str = Field(default="experiment", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: str = ""
    seed: int = Field(default=1, ge=0, le=2**63 - 1)
    # Trials per run: > 1 makes `flashlab run` write a trial set (seeds seed, seed+1, ...).
    repeat: int = Field(default=1, ge=1, le=100)
    # A backend the lab did not build (docs/TARGETS.md), instead of `stack:`: the path of its
    # target file (relative to this experiment's folder, else to the current one), loaded and
    # checked with the experiment; the manifest records the whole file.
    target: TargetSpec | None = None
    stack: StackSpec = Field(default_factory=StackSpec)
    product: ProductSpec = Field(default_factory=ProductSpec)
    scenario: Scenario = Field(default_factory=Scenario)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    isolation: IsolationSpec = Field(default_factory=IsolationSpec)
    faults: list[FaultSpec] = Field(default_factory=list)
    # The machine's capacity, measured before the load (docs/METHOD.md, "Portable verdicts"):
    # `off` (YAML reads a bare off as false) skips the probe.
    capacity: CapacitySpec | Literal["off", False] = Field(
        default_factory=CapacitySpec,
        description="The capacity probe before the load ({probe_s, wrk}); off skips it, and a "
        "clause that needs it is then refused (docs/METHOD.md, 'Portable verdicts').",
    )
    hypothesis: list[str] = Field(
        default_factory=lambda: ["oversell == 0", "lost_acknowledged == 0"]
    )

    # Live abort guards (flashlab.lab.guards.grammar): e.g. `oversell_live > 0`, `p99_5s_ms > 5000 for 10s`.
    guards: list[str] = Field(default_factory=list, max_length=32)

    @field_validator("hypothesis")
    @classmethod
    def _clauses(cls, clauses: list[str], info: ValidationInfo) -> list[str]:
        # `faults` is declared before `hypothesis`, so it is validated (or missing) by now.
        scheduled = sorted({f.fault for f in info.data.get("faults") or []})
        for text in clauses:
            try:
                clause = parse_clause(text)
            except HypothesisError as exc:
                raise ValueError(str(exc)) from None
            if clause.fault is not None and clause.fault not in scheduled:
                close = difflib.get_close_matches(clause.fault, scheduled, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "it schedules none by that name"
                raise ValueError(
                    f"{text!r} names fault {clause.fault!r}, which this experiment does not "
                    f"schedule ({hint}; scheduled: {', '.join(scheduled) or 'none'})"
                )
            _check_profile(text, clause.profile, info.data.get("scenario"))
            if clause.needs_capacity and info.data.get("capacity") == CAPACITY_OFF:
                raise ValueError(
                    f"{text!r} needs the capacity probe, which `capacity: off` turns off "
                    "(drop `capacity: off`, or bound it with a number)"
                )
        return clauses

    @field_validator("capacity", mode="before")
    @classmethod
    def _capacity_off(cls, value: Any) -> Any:
        # One message per mistake, not one per member of the union.
        if value is False or value == CAPACITY_OFF or isinstance(value, CapacitySpec):
            return CAPACITY_OFF if value is False else value
        if not isinstance(value, dict):
            raise ValueError(f"expected off or a mapping {{probe_s, wrk}}, not {value!r}")
        try:
            return CapacitySpec.model_validate(value)
        except ValidationError as exc:
            raise ValueError(first_error(exc, friendly=True)) from None

    def connections_per_worker(self) -> int:
        """`engine.connections`; for `auto`, the knee (KNEE_CONNECTIONS_PER_API_WORKER per API
        worker of `stack.workers`) shared by the generator's workers (inline: one)."""
        if self.engine.connections != "auto":
            return self.engine.connections
        generators = 1 if self.engine.kind == "inline" else self.engine.workers
        total = KNEE_CONNECTIONS_PER_API_WORKER * self.stack.workers
        return max(1, -(-total // generators))

    @property
    def capacity_probe(self) -> CapacitySpec | None:
        """The probe's settings, or None when `capacity: off`."""
        return self.capacity if isinstance(self.capacity, CapacitySpec) else None

    @model_validator(mode="before")
    @classmethod
    def _target_replaces_the_stack(cls, data: Any) -> Any:
        # A key at its default is no choice (a dumped experiment has them all): only a value
        # someone chose is refused.
        if not isinstance(data, dict) or data.get("target") is None:
            return data
        stack = data.get("stack") or {}
        if isinstance(stack, BaseModel):
            stack = stack.model_dump(mode="json")
        if not isinstance(stack, dict) or {**DEFAULT_STACK, **stack} != DEFAULT_STACK:
            raise ValueError("stack: a target brings its own (its file's start:); drop one of them")
        product = data.get("product")
        chosen = [
            k
            for k in sorted(OWN_STACK_ONLY)
            if isinstance(product, dict) and k in product and product[k] != DEFAULT_PRODUCT[k]
        ]
        if chosen:
            raise ValueError(
                f"product.{chosen[0]}: only for the lab's own stack (a target has its own logic)"
            )
        return data

    @field_validator("target", mode="before")
    @classmethod
    def _load_target(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str | Path):
            return value
        base = (info.context or {}).get("base_dir")
        try:
            return load_target(find_target(Path(value), base))
        except TargetError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _faults_fit_the_target(self) -> Experiment:
        if self.target is None:
            for i, f in enumerate(self.faults):
                if f.params.get("link", "store") != "store":
                    raise ValueError(
                        f"faults.{i}.params.link: {f.params['link']!r} needs a target "
                        "(the lab's own stack has the store link only)"
                    )
            return self
        if self.engine.client not in TARGET_CLIENTS:
            raise ValueError(
                f"engine.client: a target is spoken to by {', '.join(TARGET_CLIENTS)} "
                f"(not {self.engine.client})"
            )
        for i, f in enumerate(self.faults):
            problem = target_fault_problem(self.target, f)
            if problem:
                raise ValueError(f"faults.{i}: {problem}")
        return self

    @model_validator(mode="after")
    def _queue_needs_a_queue_client(self) -> Experiment:
        # A waiting room is only reachable by shoppers that join it and poll: a client without
        # the protocol would only ever be told `not_admitted`.
        if self.target is not None:
            return self
        if needs_queue_protocol(self.product.strategy) and self.engine.client not in QUEUE_CLIENTS:
            raise ValueError(
                f"engine.client: {self.engine.client} cannot speak the waiting-room protocol of "
                f"strategy {self.product.strategy} (clients that can: {', '.join(QUEUE_CLIENTS)})"
            )
        return self

    @field_validator("guards")
    @classmethod
    def _guards(cls, guards: list[str]) -> list[str]:
        for i, text in enumerate(guards):
            try:
                parse_guard(text)
            except GuardError as exc:
                raise ValueError(f"[{i}] {exc}") from None
        return guards


# Product keys that configure the lab's own API; a target file says how its backend behaves.
OWN_STACK_ONLY = frozenset({"strategy", "settings", "rate_limit", "price_cents"})


DEFAULT_STACK = StackSpec().model_dump(mode="json")
DEFAULT_PRODUCT = ProductSpec().model_dump(mode="json")


def find_target(path: Path, base_dir: Path | None) -> Path:
    """A target file named by an experiment: relative to the experiment's folder when it is
    there, else to the current folder (as given)."""
    if path.is_absolute() or base_dir is None:
        return path
    beside = base_dir / path
    return beside if beside.exists() or not path.exists() else path


def target_fault_problem(target: TargetSpec, fault: FaultSpec) -> str | None:
    """Why a scheduled fault cannot hit this target (None: it can)."""
    # start-up cost: only this path pays for httpx, rich
    from flashlab.system.targets.processes import link_problem

    cls = fault_class(fault.fault)
    roles = target.roles()
    if cls.role is not None and cls.role not in roles:
        have = ", ".join(sorted(r.value for r in roles)) or "none"
        return (
            f"{fault.fault} hits the process with role {cls.role}; target {target.name!r} has "
            f"roles: {have}"
        )
    if cls.needs_proxy:
        problem = link_problem(target, str(fault.params.get("link", "store")))
        if problem:
            return f"{fault.fault}: {problem}"
    return None


class ExperimentError(UserError, ValueError):
    """One line, naming the file and the field: what the CLI prints before exiting 2."""


def parse_experiment(
    data: Any, source: str = "<experiment>", base_dir: Path | None = None
) -> Experiment:
    """An experiment from its parsed YAML; `base_dir` is where relative `target:` paths start."""
    if not isinstance(data, dict):
        raise ExperimentError(f"{source}: top level must be a mapping of fields")
    try:
        return Experiment.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        message = first_error(exc, friendly=True, choices=True, count_more=True)
        # A whole-file rule names its own key ("stack: ..."): no "(top level)" before it.
        message = re.sub(r"^\(top level\): (?=[a-z_.0-9]+: )", "", message)
        raise ExperimentError(f"{source}: {message}") from None


SHIPPED_PACKAGE = "flashlab.experiments"  # the repository's experiments/ folder, as package data


def shipped_experiments() -> dict[str, Path]:
    """Experiments shipped with flashlab: name (file stem) -> file, sorted by name."""
    # A wheel installs as plain files, so the resource is a real path (no zip extraction needed).
    folder = Path(str(resources.files(SHIPPED_PACKAGE)))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"), key=lambda p: p.stem)}


def resolve_experiment(ref: Path | str) -> Path:
    """A path that exists is itself; a bare name (no folder, no suffix needed) is a shipped experiment."""
    path = Path(ref)
    if path.exists() or len(path.parts) != 1:
        return path
    shipped = shipped_experiments()
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    if name in shipped:
        return shipped[name]
    close = difflib.get_close_matches(name, list(shipped), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `flashlab experiments`"
    raise ExperimentError(f"{ref}: no such file or shipped experiment; {hint}")


def describe_shipped() -> list[dict[str, str]]:
    """Name, one-line description and file of each shipped experiment (for `flashlab experiments`)."""
    rows = []
    for name, path in shipped_experiments().items():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            data = {}
        description = str(data.get("description", "")) if isinstance(data, dict) else ""
        rows.append({"name": name, "description": description.strip(), "path": str(path)})
    return rows


def load_experiment(path: Path | str, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read and validate an experiment (a file or a shipped name); `overrides` are dotted paths, e.g. {'product.stock': 10}."""
    path = resolve_experiment(path)
    data = read_yaml(path, "experiment file", ExperimentError) or {}
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: top level must be a mapping of fields")
    overrides = dict(overrides or {})
    if overrides.get("target") is not None:
        # --target-file: the file's backend instead of the lab's stack and its strategy. Its
        # path is as typed (relative to the current folder, not to the experiment's).
        overrides["target"] = str(Path(overrides["target"]).absolute())
        data.pop("stack", None)
        if isinstance(data.get("product"), dict):
            data["product"] = {k: v for k, v in data["product"].items() if k not in OWN_STACK_ONLY}
        # Spoken to by a client that renders its request (`raw` speaks only the lab's own API).
        engine = data.get("engine")
        if isinstance(engine, dict) and engine.get("client") not in (None, *TARGET_CLIENTS):
            engine.pop("client")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for depth, part in enumerate(parents, 1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                field = ".".join(parents[:depth])
                raise ExperimentError(f"{path}: {field}: must be a mapping of fields")
        node[leaf] = value
    return parse_experiment(data, str(path), path.parent)
