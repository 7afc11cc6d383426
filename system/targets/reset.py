"""Putting a target's stock on sale: its file's `reset:` steps (Redis commands, SQL, HTTP calls, a command), in order."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from flashlab.core.placeholders import render
from flashlab.core.target import TargetSpec
from flashlab.system import procs
from flashlab.system.targets.stores import TargetQueryError
from flashlab.system.targets.stores import http_json
from flashlab.system.targets.stores import redis_client
from flashlab.system.targets.stores import redis_command
from flashlab.system.targets.stores import sql_connection
from flashlab.system.targets.stores import sql_statement

COMMAND_TIMEOUT_S = 120.0


def sale_values(values: Mapping[str, Any], product: str, stock: int) -> dict[str, Any]:
    return {**values, "product": product, "stock": stock}


def reset_target(
    spec: TargetSpec, values: Mapping[str, Any], base_url: str, product: str, stock: int
) -> None:
    """Run every reset step; TargetQueryError (exit 2) / TargetStoreError (exit 4) naming it."""
    v = sale_values(values, product, stock)
    reset = spec.reset
    if reset.redis:
        url = render(reset.redis_url or _truth_url(spec, "redis"), v)
        with redis_client(url, "reset.redis") as client:
            for command in reset.redis:
                redis_command(client, command, v)
    if reset.sql:
        url = render(reset.sql_url or _truth_url(spec, "sql"), v)
        with sql_connection(url, "reset.sql") as conn:
            for statement in reset.sql:
                conn.execute(*sql_statement(statement, v))
    for i, call in enumerate(reset.http or []):
        where = f"reset.http[{i}]"
        status, _data = http_json(
            base_url, call.method, call.path, v, where, json=call.json_body,
            headers={render(k, v): render(h, v) for k, h in call.headers.items()},
        )  # fmt: skip
        if status not in call.expect:
            raise TargetQueryError(f"{where}: {call.method} {call.path} answered {status}")
    if reset.command:
        _run(reset.command, spec, v)


def _truth_url(spec: TargetSpec, kind: str) -> str:
    source = getattr(spec.truth, kind, None) if spec.truth else None
    if source is None:
        raise TargetQueryError(f"reset.{kind}: needs reset.{kind}_url or truth.{kind}.url")
    return str(source.url)


def _run(command: str, spec: TargetSpec, values: Mapping[str, Any]) -> None:
    argv = shlex.split(render(command, values))
    where = f"reset.command {command!r}"
    procs.run_once(
        argv, cwd=spec.folder, timeout_s=COMMAND_TIMEOUT_S, where=where, error=TargetQueryError
    )
