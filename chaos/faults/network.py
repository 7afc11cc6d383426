"""Network faults through the TCP fault proxy's toxics: between the API and its store, or between the shoppers and the API.

Each fault is one `network_fault(...)` row at the end of this module. It adds one named toxic
(`<fault>-<index>`) on inject and deletes it on recover. A PING probe through the proxy before
and after shows what the API saw (added latency, timeout, reset).

Every network fault takes `link`: `store` (the default: the proxy between the API workers and
Redis, or a target's processes and the store its file gives role redis or db) or `client` (the
proxy between the shoppers and a target's base_url; the lab's own stack has only the store link).
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar
from typing import Literal

from pydantic import BaseModel
from pydantic import Field
from pydantic import create_model

from flashlab.chaos.faults.fault import Fault
from flashlab.chaos.faults.fault import FaultContext
from flashlab.chaos.faults.fault import FaultParams
from flashlab.chaos.faults.fault import host_port
from flashlab.chaos.faults.fault import tcp_ping
from flashlab.chaos.proxy import toxics

Direction = toxics.Direction
Link = Literal["store", "client"]
_DIRECTION_HELP = "up = toward the store (link client: toward the API), down = back, both"
_LINK_HELP = "store: between the API and its store; client: between the shoppers and a target"
PROXY = "proxy"


def _direction(default: Direction) -> Any:
    """A fault's `direction` field: which way its toxic acts, with that fault's default."""
    return Field(default=default, description=_DIRECTION_HELP)


class NetworkFault(Fault):
    """Base: a toxic of `toxic_type` (default: the fault's name) with the params as given (minus
    `direction`: the other names match the toxic's)."""

    toxic_type: ClassVar[str | None] = None
    needs_proxy = True

    def toxic_name(self) -> str:
        return f"{self.name}-{self.index}"

    def link(self) -> str:
        return str(getattr(self.params, "link", "store"))

    def toxic_params(self) -> dict[str, Any]:
        params = self.params.model_dump()
        params.pop("direction", None)
        params.pop("link", None)
        return params

    def _probe(self, ctx: FaultContext) -> dict[str, Any]:
        if self.link() != "store":
            return {"result": "not probed (client link: HTTP, not RESP)"}
        return tcp_ping(*host_port(ctx.proxy_for(self.link()).stats()["listen"]))

    def _evidence(self, ctx: FaultContext, done: dict[str, Any], **stats: str) -> dict[str, Any]:
        """What the proxy shows right after inject/recover: `done` (what the call returned),
        the named stats (evidence key -> stats key) and a probe through the proxy."""
        now = ctx.proxy_for(self.link()).stats()
        return {
            **done,
            **{key: now[name] for key, name in stats.items()},
            "probe": self._probe(ctx),
        }

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        proxy = ctx.proxy_for(self.link())  # FaultError here when the stack has no proxy
        self.target = PROXY if self.link() == "store" else f"{PROXY}:{self.link()}"
        direction: Direction = getattr(self.params, "direction", "both")
        toxic_type = self.toxic_type or self.name
        toxic = proxy.add(self.toxic_name(), toxic_type, direction, **self.toxic_params())
        done = {"toxic": toxic}
        return self._evidence(ctx, done, connections_active="connections_active", resets="resets")

    def recover(self, ctx: FaultContext) -> dict[str, Any]:
        removed = ctx.proxy_for(self.link()).remove(self.toxic_name())
        return self._evidence(ctx, {"removed": removed}, resets="resets", toxics_left="toxics")


def network_fault(
    name: str,
    description: str,
    toxic: type[BaseModel] | None = None,
    direction: Direction | None = "down",
    toxic_type: str | None = None,
    **fields: Any,
) -> type[NetworkFault]:
    """A network fault class from one row: its params are the fields of the proxy's `toxic`
    model (bounds and defaults have one home, flashlab.chaos.proxy.toxics; None: no fields of
    its own), plus `fields` (name -> (type, Field)) that add or override some, plus a
    `direction` field with this fault's default (None: no such field, the toxic acts both
    ways)."""
    title = name.title()
    if direction is not None:
        fields["direction"] = (Direction, _direction(direction))
    fields["link"] = (Link, Field(default="store", description=_LINK_HELP))
    params = create_model(
        f"{title}Params",
        __base__=(toxic, FaultParams) if toxic else FaultParams,
        __module__=__name__,
        **fields,
    )
    attrs = {"name": name, "description": description, "Params": params, "toxic_type": toxic_type}
    return type(title, (NetworkFault,), {"__module__": __name__, **attrs})


# The network faults, one row each (the registry, flashlab.chaos.faults, names these classes).
Latency = network_fault(
    "latency",
    "Add fixed latency between the API and Redis (default: to every Redis reply).",
    ms=(float, toxics.LatencyParams.model_fields["ms"]),
)
Jitter = network_fault(
    "jitter",
    "Variable latency between the API and Redis: ms +/- jitter_ms, seeded.",
    toxic=toxics.LatencyParams,
    toxic_type="latency",
    # The latency toxic's fields, with a smaller base delay and a spread by default.
    ms=(float, Field(default=20.0, ge=0, le=toxics.MAX_DELAY_MS, description="base delay")),
    jitter_ms=(
        float,
        Field(default=50.0, ge=0, le=toxics.MAX_DELAY_MS, description="uniform +/- spread"),
    ),
)
Reset = network_fault(
    "reset",
    "Connection resets between the API and Redis: every open connection is dropped at "
    "inject, new ones are reset with `probability` until recovery.",
    toxic=toxics.ResetParams,
    direction=None,
)
Blackhole = network_fault(
    "blackhole",
    "Blackhole between the API and Redis: bytes are accepted and never forwarded, so "
    "every Redis call times out (API answers 503).",
    toxic=toxics.BlackholeParams,
    direction="both",
)
Bandwidth = network_fault(
    "bandwidth",
    "Throttle the API<->Redis link to kb_per_s KiB/s.",
    toxic=toxics.BandwidthParams,
)
