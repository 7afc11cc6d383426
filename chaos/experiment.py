"""Experiment files: the YAML a run is made from (stack, product, scenario, engine, faults, hypothesis).

`load_experiment` validates with pydantic and turns the first error into one line that names the
field path and, where there is a fixed set, the allowed values. It takes a path or the bare name of
an experiment shipped inside the package (`smoke` = experiments/smoke.yaml, found through
importlib.resources, so it works from any directory once flashlab is installed).
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flashlab.analysis.hypothesis import HypothesisError, parse_clause
from flashlab.chaos.faults import FAULTS, fault_names, fault_param_error
from flashlab.simulator.scenario import Scenario
from flashlab.system.contract import ID_PATTERN, ResetRequest, Strategy
from flashlab.system.platforms.base import Durability


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StackSpec(_Model):
    platform: Literal["local", "compose"] = "local"
    workers: int = Field(default=2, ge=1, le=64)
    durability: Durability = "none"
    redis_timeout_ms: int = Field(default=500, ge=10, le=60_000)
    prometheus: bool = True


class ProductSpec(_Model):
    id: str = Field(default="iphone", pattern=ID_PATTERN)
    stock: int = Field(default=1_000, ge=0, le=10_000_000)
    strategy: Strategy = Strategy.lua
    price_cents: int = Field(default=99_900, ge=0)
    naive_delay_ms: float = Field(default=0.0, ge=0, le=5_000)
    lock_ttl_ms: int = Field(default=2_000, ge=10, le=60_000)
    optimistic_retries: int = Field(default=3, ge=0, le=100)

    def reset_request(self) -> ResetRequest:
        """The admin reset that puts this product on sale, as the API's contract types it."""
        return ResetRequest(
            product_id=self.id,
            stock=self.stock,
            strategy=self.strategy,
            price_cents=self.price_cents,
            naive_delay_ms=self.naive_delay_ms,
            lock_ttl_ms=self.lock_ttl_ms,
            optimistic_retries=self.optimistic_retries,
        )


class EngineSpec(_Model):
    kind: Literal["ray", "process", "inline"] = "process"
    workers: int = Field(default=2, ge=1, le=256)  # processes or Ray actors
    connections: int = Field(default=256, ge=1, le=100_000)  # per worker
    client: Literal["aiohttp", "httpx", "raw"] = "aiohttp"
    ray_address: str | None = None


class Repeat(_Model):
    every_s: float = Field(gt=0, le=3600)
    count: int = Field(ge=1, le=1000)


class FaultSpec(_Model):
    fault: str
    at_s: float = Field(ge=0, le=3600)  # seconds after the load starts
    duration_s: float = Field(default=0.0, ge=0, le=3600)
    params: dict[str, Any] = Field(default_factory=dict)
    repeat: Repeat | None = None

    @field_validator("fault")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in FAULTS:
            allowed = ", ".join(fault_names()) or "none registered"
            raise ValueError(f"unknown fault {name!r} (allowed: {allowed})")
        return name

    @model_validator(mode="after")
    def _params(self) -> FaultSpec:
        problem = fault_param_error(self.fault, self.params)
        if problem:
            raise ValueError(f"params: {problem}")
        return self


class Experiment(_Model):
    name: str = Field(default="experiment", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: str = ""
    seed: int = Field(default=1, ge=0, le=2**63 - 1)
    stack: StackSpec = Field(default_factory=StackSpec)
    product: ProductSpec = Field(default_factory=ProductSpec)
    scenario: Scenario = Field(default_factory=Scenario)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    faults: list[FaultSpec] = Field(default_factory=list)
    hypothesis: list[str] = Field(
        default_factory=lambda: ["oversell == 0", "lost_acknowledged == 0"]
    )

    @field_validator("hypothesis")
    @classmethod
    def _clauses(cls, clauses: list[str]) -> list[str]:
        for clause in clauses:
            try:
                parse_clause(clause)
            except HypothesisError as exc:
                raise ValueError(str(exc)) from None
        return clauses


class ExperimentError(ValueError):
    """One line, naming the file and the field: what the CLI prints before exiting 2."""


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] in ("literal_error", "enum") and "expected" in err.get("ctx", {}):
        msg = f"must be one of {err['ctx']['expected']}"
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    extra = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{path}: {msg}{extra}"


def parse_experiment(data: Any, source: str = "<experiment>") -> Experiment:
    if not isinstance(data, dict):
        raise ExperimentError(f"{source}: top level must be a mapping of fields")
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError(f"{source}: {_first_error(exc)}") from None


SHIPPED_PACKAGE = "flashlab.experiments"  # the repository's experiments/ folder, as package data


def shipped_experiments() -> dict[str, Path]:
    """Experiments shipped with flashlab: name (file stem) -> file, sorted by name."""
    # A wheel installs as plain files, so the resource is a real path (no zip extraction needed).
    folder = Path(str(resources.files(SHIPPED_PACKAGE)))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


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
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ExperimentError(
            f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return parse_experiment(data, str(path))
