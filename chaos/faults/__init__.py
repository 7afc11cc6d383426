"""The fault catalogue: name -> fault class. A new fault is one module plus one line here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

from flashlab.core.registry import Registry

if TYPE_CHECKING:
    from flashlab.chaos.faults.fault import Fault

# name -> "module:Class"; names listed here are valid in experiment files.
FAULTS = Registry(
    "fault",
    {
        "redis-restart": "flashlab.chaos.faults.redis:RedisRestart",
        "redis-kill": "flashlab.chaos.faults.redis:RedisKill",
        "redis-pause": "flashlab.chaos.faults.redis:RedisPause",
        "worker-kill": "flashlab.chaos.faults.workers:WorkerKill",
        "nginx-reload": "flashlab.chaos.faults.nginx:NginxReload",
        "nginx-kill": "flashlab.chaos.faults.nginx:NginxKill",
        "latency": "flashlab.chaos.faults.network:Latency",
        "jitter": "flashlab.chaos.faults.network:Jitter",
        "reset": "flashlab.chaos.faults.network:Reset",
        "blackhole": "flashlab.chaos.faults.network:Blackhole",
        "bandwidth": "flashlab.chaos.faults.network:Bandwidth",
        "actor-kill": "flashlab.chaos.faults.actors:ActorKill",
        "db-restart": "flashlab.chaos.faults.db:DbRestart",
        "db-kill": "flashlab.chaos.faults.db:DbKill",
    },
)


def fault_names() -> list[str]:
    return sorted(FAULTS)


def fault_class(name: str) -> type[Fault]:
    """The class registered under `name`; ValueError naming the allowed faults when unknown."""
    return FAULTS.load(name)


def make_fault(name: str, params: dict[str, Any] | None = None, index: int = 0) -> Fault:
    return fault_class(name)(params, index=index)


def needs_proxy(names: Iterable[str]) -> bool:
    """True when any of these faults acts through the TCP fault proxy (the stack must start it)."""
    return any(name in FAULTS and fault_class(name).needs_proxy for name in names)


def network_links(faults: Iterable[Any]) -> frozenset[str]:
    """The proxy links a schedule's network faults act on ("store", "client"); `faults` are
    FaultSpecs (name + params)."""
    return frozenset(
        str(f.params.get("link", "store"))
        for f in faults
        if f.fault in FAULTS and fault_class(f.fault).needs_proxy
    )


def fault_param_error(name: str, params: dict[str, Any]) -> str | None:
    """Validate a fault's params; returns an error message or None. Unknown names are caught earlier."""
    # start-up cost: only this path pays for pydantic, yaml
    from pydantic import ValidationError

    from flashlab.core.validation import first_error

    fault_cls = fault_class(name)
    try:
        fault_cls.Params.model_validate(params)
    except ValidationError as exc:  # first error only, as "field: what is wrong"
        allowed = ", ".join(fault_cls.Params.model_fields) or "none"
        # The first loc part is the field; later parts are union branches ("count.int").
        return first_error(
            exc,
            empty="params",
            field_only=True,
            friendly=True,
            unknown_field=f"unknown field (allowed: {allowed})",
        )
    return None
