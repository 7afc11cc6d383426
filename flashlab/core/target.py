"""Target files: a flash-sale backend the lab did not build, described in YAML, and how to read its answers.

A target file says how to start the backend (processes the lab owns, or the user's Compose
file), how to reset its stock, how to buy, how to read each answer (ordered rules: the first that
matches decides the outcome), where its ground truth lives (Redis, SQL or HTTP) and which of its
processes play which role for faults. docs/TARGETS.md is the user's guide; this module is the
types (`TargetSpec`), the placeholders (`{port}`, `{product}`, ...), the answer reader
(`AnswerReader`) and the facts a target offers its checks (`TargetSpec.facts`).

Placeholders are checked when the file is loaded: a `{name}` that no rule defines where it is
used is an error naming the key and the closest valid name. `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import TypeAdapter
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator

from flashlab.core.errors import UserError
from flashlab.core.facts import Fact
from flashlab.core.placeholders import LOCAL
from flashlab.core.placeholders import PORT_NAME
from flashlab.core.placeholders import PORTS
from flashlab.core.placeholders import REQUEST
from flashlab.core.placeholders import SALE
from flashlab.core.placeholders import placeholder_problem
from flashlab.core.placeholders import placeholders
from flashlab.core.placeholders import strings
from flashlab.core.validation import first_error
from flashlab.core.validation import read_yaml as _read_yaml

NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"


class Outcome(StrEnum):
    """What an answer means, whatever its status and body look like."""

    ok = "ok"  # an acknowledged purchase
    busy = "busy"  # lost a race; nothing written; worth a retry
    sold_out = "sold_out"
    already_purchased = "already_purchased"
    rate_limited = "rate_limited"
    unavailable = "unavailable"  # the backend could not serve; nothing written; worth a retry
    rejected = "rejected"  # a definite refusal (bad input, unknown product): never retried
    indeterminate = "indeterminate"  # the purchase may have happened (e.g. a 500 after a write)
    unknown = "unknown"  # no rule matched: counted, shown, indeterminate for the checks


# The history's `code` for each outcome: the lab's own stack's words where they exist, so every
# statistic treats a target's answers as it treats the stack's.
OUTCOME_CODES: dict[Outcome, str] = {o: o.value for o in Outcome} | {
    Outcome.unavailable: "backend_unavailable"
}


class TargetError(UserError, ValueError):
    """A target file that cannot be used: one line naming the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def compile_path(text: str) -> Any:
    # start-up cost: only this path pays for jsonpath_ng
    from jsonpath_ng.exceptions import JsonPathLexerError
    from jsonpath_ng.exceptions import JsonPathParserError
    from jsonpath_ng.ext import parse

    try:
        return parse(text)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        raise ValueError(f"invalid JSONPath {text!r} ({str(exc).splitlines()[0]})") from None


def _check_path(text: str | None) -> str | None:
    if text is not None:
        compile_path(text)
    return text


# --- start -------------------------------------------------------------------------------------


class Role(StrEnum):
    """What a process is, for faults: redis-* hit `redis`, db-* hit `db`, worker-kill hits
    `worker`, nginx-* hit `gateway`."""

    redis = "redis"
    db = "db"
    worker = "worker"
    gateway = "gateway"


STORE_ROLES = (Role.redis, Role.db)


class Ready(_Strict):
    """When a started process counts as up: a TCP port accepts, or an HTTP GET answers 2xx."""

    tcp: str | None = None  # "127.0.0.1:{redis_port}"
    http: str | None = None  # "/health" (on base_url) or a full URL
    timeout_s: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one(self) -> Ready:
        if (self.tcp is None) == (self.http is None):
            raise ValueError("give exactly one of tcp or http")
        return self


class Setup(_Strict):
    """A command run once before the first start, skipped when `creates` exists (npm ci)."""

    command: str
    cwd: str | None = None
    creates: str | None = None
    timeout_s: float = Field(default=600.0, gt=0, le=3600)


class Process(_Strict):
    """One process the lab starts, owns (by PID) and stops."""

    name: str = Field(pattern=NAME_PATTERN)
    command: str | list[str]
    cwd: str | None = None  # relative to the target file's folder
    env: dict[str, str] = Field(default_factory=dict)
    ready: Ready | None = None
    role: Role | None = None
    # Respawned when it dies, as a process manager would (pm2, systemd Restart=always).
    # Default: workers yes, everything else no (a killed Redis stays down until a fault's recovery).
    restart: bool | None = None

    @property
    def respawns(self) -> bool:
        return self.restart if self.restart is not None else self.role == Role.worker


class Service(_Strict):
    """One service of the user's Compose file: its role and when it is up."""

    role: Role | None = None
    ready: Ready | None = None


class ComposeStart(_Strict):
    """The user's own Compose file, brought up under a project name the lab owns. Port
    placeholders are passed as environment variables in upper case (`{port}` -> `$PORT`)."""

    compose: str  # relative to the target file's folder
    services: dict[str, Service] = Field(default_factory=dict)
    build: bool = True  # `up --build`
    env: dict[str, str] = Field(default_factory=dict)  # more variables for the file's ${...}


# --- reset, buy, answers ---------------------------------------------------------------------


class HttpCall(_Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    expect: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])


class Reset(_Strict):
    """How to put `stock` units of `product` on sale and forget earlier orders, before each run
    or trial. Steps run in this order: redis, sql, http, command."""

    redis: list[str] | None = None  # commands; on redis_url, else truth.redis.url
    redis_url: str | None = None
    sql: list[str] | None = None  # statements in one transaction; on sql_url, else truth.sql.url
    sql_url: str | None = None
    http: list[HttpCall] | None = None
    command: str | None = None

    @field_validator("http", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _something(self) -> Reset:
        if not (self.redis or self.sql or self.http or self.command):
            raise ValueError("give at least one of redis, sql, http, command")
        return self


class Buy(_Strict):
    """One purchase attempt. `{user}` is the shopper's id, `{attempt}` its attempt number."""

    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    path: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None  # a raw body instead of json (set content-type in headers)

    @model_validator(mode="after")
    def _one_body(self) -> Buy:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give json or body, not both")
        return self


StatusMatch = int | list[int] | str


class AnswerRule(_Strict):
    """Matches on the status and optionally on the body (a regex) and JSON fields (JSONPath ->
    value); the first rule that matches decides. `order_id`/`remaining` extract by JSONPath."""

    status: StatusMatch
    body: str | None = None
    json_fields: dict[str, Any] | None = Field(default=None, alias="json")
    outcome: Outcome
    order_id: str | None = None
    remaining: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        # Before the union: its errors would name a member (`status.int`), not the form.
        status_set(value)  # raises on a bad form
        return value

    @field_validator("body")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r} ({exc})") from None
        return value

    @field_validator("json_fields")
    @classmethod
    def _paths(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for path in value or {}:
            compile_path(path)
        return value

    @field_validator("order_id", "remaining")
    @classmethod
    def _extract(cls, value: str | None) -> str | None:
        return _check_path(value)

    def label(self) -> str:
        """A short, readable form for tables: `409 body~'busy' -> busy`."""
        parts = [str(self.status)]
        if self.body is not None:
            parts.append(f"body~{self.body!r}")
        parts += [f"{k}=={v!r}" for k, v in (self.json_fields or {}).items()]
        return " ".join(parts) + f" -> {self.outcome.value}"


def status_set(value: StatusMatch) -> frozenset[int]:
    """200 / [400, 422] / "4xx" / "200-204" as the statuses they match."""
    listed = isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )
    if isinstance(value, bool) or not (isinstance(value, int | str) or listed):
        raise ValueError("must be a status, a list of statuses, or a class like '4xx'")
    if isinstance(value, int):
        values = [value]
    elif isinstance(value, list):
        values = value
    elif re.fullmatch(r"[1-5]xx", value.strip().lower()):
        first = int(value.strip()[0]) * 100
        return frozenset(range(first, first + 100))
    elif m := re.fullmatch(r"\s*(\d{3})\s*-\s*(\d{3})\s*", value):
        values = list(range(int(m[1]), int(m[2]) + 1))
    else:
        raise ValueError(f"{value!r}: must be a status, a list, 'Nxx' or 'LOW-HIGH'")
    if not values or any(not 100 <= v <= 599 for v in values):
        raise ValueError(f"{value!r}: statuses are 100..599")
    return frozenset(values)


# --- truth -------------------------------------------------------------------------------------


class OrderPaths(_Strict):
    """Where an order's fields are inside one item (JSONPath); an item that is a plain string,
    with no paths, is the order id."""

    order_id: str | None = None
    user: str | None = None
    ts_ms: str | None = None

    @field_validator("order_id", "user", "ts_ms")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return _check_path(value)

    def fields(self) -> list[str]:
        named = {"order_id": self.order_id, "user_id": self.user, "ts_ms": self.ts_ms}
        return [k for k, v in named.items() if v is not None] or ["order_id"]


class RedisOrders(OrderPaths):
    command: str  # LRANGE/SMEMBERS/...: one item per order (JSON text or a plain id)


class RedisTruth(_Strict):
    url: str
    stock: str | None = None  # a command answering one integer
    buyers: str | None = None  # a command answering the set of buyers (user ids)
    orders: RedisOrders | None = None  # a plain command is {command: ...}

    @field_validator("orders", mode="before", json_schema_input_type=str | RedisOrders | None)
    @classmethod
    def _command(cls, value: Any) -> Any:
        return {"command": value} if isinstance(value, str) else value


class SqlTruth(_Strict):
    """`url` is a SQLAlchemy URL (postgresql://... uses psycopg). `orders` names its columns
    order_id, user_id, ts_ms (any of them); `{product}`/`{stock}` are bound parameters."""

    url: str
    stock: str | None = None
    orders: str | None = None


class HttpValue(_Strict):
    path: str
    value: str  # JSONPath

    @field_validator("value")
    @classmethod
    def _path(cls, value: str) -> str:
        return _check_path(value) or value


class HttpOrders(OrderPaths):
    path: str
    items: str  # JSONPath to the list of orders

    @field_validator("items")
    @classmethod
    def _path(cls, value: str) -> str:
        return _check_path(value) or value


class HttpTruth(_Strict):
    stock: HttpValue | None = None
    buyers: HttpValue | None = None
    orders: HttpOrders | None = None


class TruthSpec(_Strict):
    """Where the backend's ground truth lives: exactly one of redis, sql, http."""

    redis: RedisTruth | None = None
    sql: SqlTruth | None = None
    http: HttpTruth | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TruthSpec:
        given = [k for k in ("redis", "sql", "http") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of redis, sql, http (got {', '.join(given) or 'none'})"
            )
        source = getattr(self, given[0])
        if not (source.stock or getattr(source, "buyers", None) or source.orders):
            raise ValueError(f"{given[0]}: read at least one of stock, buyers, orders")
        return self

    @property
    def source(self) -> str:
        return "redis" if self.redis else "sql" if self.sql else "http"

    def templates(self) -> dict[str, Any]:
        """The templated strings of the truth (JSONPaths are not templates: not included)."""
        if self.redis is not None:
            orders = self.redis.orders.command if self.redis.orders else None
            return {"redis": {"url": self.redis.url, "stock": self.redis.stock,
                              "buyers": self.redis.buyers, "orders": orders}}  # fmt: skip
        if self.sql is not None:
            return {"sql": self.sql.model_dump()}
        assert self.http is not None
        paths = {k: getattr(self.http, k) for k in ("stock", "buyers", "orders")}
        return {"http": {k: v.path for k, v in paths.items() if v is not None}}

    def fields(self) -> list[str]:
        """What this truth reads (truth.json `fields`, flashlab.core.facts.TRUTH_FIELDS)."""
        src = self.redis or self.sql or self.http
        assert src is not None
        out = ["stock"] if src.stock else []
        orders = src.orders
        if isinstance(orders, OrderPaths):
            out += ["orders", *orders.fields()]
        elif orders is not None:  # SQL: its columns say; known only once it ran
            out += ["orders"]
        elif getattr(src, "buyers", None):
            out += ["orders", "user_id"]
        return out


@dataclass(frozen=True)
class TargetRequest:
    """What a load worker needs of a target: its buy request and its answer rules (picklable:
    it crosses process and Ray actor boundaries)."""

    buy: Buy
    answers: list[AnswerRule]


# --- the file ----------------------------------------------------------------------------------

_PROCESSES: TypeAdapter[list[Process]] = TypeAdapter(list[Process])


class TargetSpec(_Strict):
    """A flash-sale backend the lab did not build."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    base_url: str
    setup: list[Setup] = Field(default_factory=list)
    start: list[Process] | ComposeStart | None = None
    health: str | None = None  # GET this (on base_url) for "is it serving": probes, steady state
    reset: Reset
    buy: Buy
    answers: list[AnswerRule] = Field(min_length=1)
    truth: TruthSpec | None = None
    # Set by the loader: the file this came from (relative paths start at its folder).
    file: str | None = None

    @field_validator("start", mode="before")
    @classmethod
    def _form(cls, start: Any) -> Any:
        # By the input's form, so an error names `start.0.ready` or `start.services.api.role`,
        # not a union member (`start.list[Process]...`) or the other member's complaint.
        if isinstance(start, list):
            return _PROCESSES.validate_python(start)
        if isinstance(start, dict):
            return ComposeStart.model_validate(start)
        if start is None or isinstance(start, ComposeStart):
            return start
        raise ValueError("must be a list of processes, or a mapping with `compose:`")

    @field_validator("start")
    @classmethod
    def _names(cls, start: list[Process] | ComposeStart | None) -> Any:
        if isinstance(start, list):
            names = [p.name for p in start]
            if dupes := sorted({n for n in names if names.count(n) > 1}):
                raise ValueError(f"process names must differ (repeated: {', '.join(dupes)})")
        return start

    def placeholder_problem(self) -> str | None:
        """`key: why` for the first templated string that cannot be rendered (None: all can).
        Checked by `parse_target`, outside pydantic, so the message names the key."""
        for where, text, scope in self._templates():
            problem = placeholder_problem(text, scope)
            if problem:
                return f"{where}: {problem}"
        return None

    def _templates(self) -> Iterator[tuple[str, str, frozenset[str]]]:
        """Every templated string of the file: (where, text, the names defined there)."""
        ports = frozenset({PORTS})
        yield "base_url", self.base_url, ports
        if self.health:
            yield "health", self.health, ports
        for i, s in enumerate(self.setup):
            yield from strings(f"setup[{i}]", s.model_dump(exclude={"timeout_s"}), LOCAL)
        if isinstance(self.start, list):
            for i, p in enumerate(self.start):
                yield from strings(f"start[{i}]", p.model_dump(exclude={"role", "restart"}), LOCAL)
        elif self.start is not None:
            yield from strings("start", self.start.model_dump(), LOCAL)
        yield from strings("reset", self.reset.model_dump(by_alias=True), SALE)
        yield from strings("buy", self.buy.model_dump(by_alias=True), REQUEST)
        if self.truth is not None:
            yield from strings("truth", self.truth.templates(), SALE)

    # -- what the lab reads off it

    @property
    def folder(self) -> Path:
        return Path(self.file).parent if self.file else Path.cwd()

    def request(self) -> TargetRequest:
        return TargetRequest(self.buy, list(self.answers))

    def processes(self) -> list[Process]:
        return self.start if isinstance(self.start, list) else []

    def roles(self) -> dict[Role, str]:
        """role -> the process or service that plays it (the first one, for faults)."""
        if isinstance(self.start, ComposeStart):
            named = [(name, s.role) for name, s in self.start.services.items()]
        else:
            named = [(p.name, p.role) for p in self.processes()]
        out: dict[Role, str] = {}
        for name, role in named:
            if role is not None:
                out.setdefault(role, name)
        return out

    def port_names(self) -> list[str]:
        """Every port placeholder the file uses, in first-use order (`port` first if used)."""
        names: list[str] = []
        for _where, text, _scope in self._templates():
            for name in placeholders(text):
                if PORT_NAME.match(name) and name not in names:
                    names.append(name)
        return sorted(names, key=lambda n: n != "port")

    def facts(self) -> frozenset[Fact]:
        """The request and answer facts this target offers (the truth's come from its read)."""
        out = set()
        buy = strings("buy", self.buy.model_dump(by_alias=True), REQUEST)
        if any("user" in placeholders(text) for _where, text, _scope in buy):
            out.add(Fact.user)
        if any(r.order_id for r in self.answers if r.outcome == Outcome.ok):
            out.add(Fact.order_id)
        if any(r.remaining for r in self.answers):
            out.add(Fact.remaining)
        return frozenset(out)


# --- rendering ---------------------------------------------------------------------------------


def local_values(spec: TargetSpec, workdir: Path | str, ports: Mapping[str, int]) -> dict[str, Any]:
    """The values of the placeholders defined on this machine: ports, workdir, dir, python."""
    return {
        **ports,
        "workdir": str(workdir),
        "dir": str(spec.folder.resolve()),
        "python": sys.executable,
    }


# --- loading -----------------------------------------------------------------------------------


def parse_target(data: Any, source: str = "<target>", file: Path | None = None) -> TargetSpec:
    """A target from its parsed YAML; TargetError naming the source and the key."""
    if not isinstance(data, dict):
        raise TargetError(f"{source}: top level must be a mapping of keys")
    if file is not None:
        data = {**data, "file": str(file.resolve())}
    try:
        spec = TargetSpec.model_validate(data)
    except ValidationError as exc:
        raise TargetError(f"{source}: {_first_problem(exc)}") from None
    problem = spec.placeholder_problem()
    if problem:
        raise TargetError(f"{source}: {problem}")
    return spec


def _first_problem(exc: ValidationError) -> str:
    """The first unknown key if there is one (a typo explains the missing key it causes),
    else the first error; as `key.path: message`."""
    unknown = [e for e in exc.errors() if e["type"] == "extra_forbidden"]
    if not unknown:
        return first_error(exc, friendly=True, choices=True)
    loc = unknown[0]["loc"]
    known = sorted({f.alias or n for m in _MODELS for n, f in m.model_fields.items()} - {"file"})
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{'.'.join(str(p) for p in loc)}: unknown key{hint}"


_MODELS: tuple[type[BaseModel], ...] = (
    TargetSpec, Process, Ready, Setup, Service, ComposeStart, Reset, HttpCall, Buy, AnswerRule,
    TruthSpec, RedisTruth, RedisOrders, SqlTruth, HttpTruth, HttpValue, HttpOrders,
)  # fmt: skip


def read_yaml(path: Path, what: str = "target file") -> Any:
    """A YAML file's content; TargetError with one line when it cannot be read or parsed."""
    return _read_yaml(path, what, TargetError)


def load_target(path: Path | str) -> TargetSpec:
    path = Path(path)
    return parse_target(read_yaml(path, "target file"), str(path), path)


def looks_like_target(data: Any) -> bool:
    """A parsed YAML document that is a target file rather than an experiment."""
    return (
        isinstance(data, dict) and ("buy" in data or "answers" in data) and "scenario" not in data
    )
