"""Network faults between the API workers and Redis, through the TCP fault proxy's toxics.

Each fault adds one named toxic (`<fault>-<index>`) on inject and deletes it on recover. A PING
probe through the proxy before and after shows what the API saw (added latency, timeout, reset).
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar

from pydantic import Field

from flashlab.chaos import proxy as toxics
from flashlab.chaos.faults.base import Fault
from flashlab.chaos.faults.base import FaultContext
from flashlab.chaos.faults.base import FaultParams
from flashlab.chaos.faults.base import host_port
from flashlab.chaos.faults.base import tcp_ping

Direction = toxics.Direction
_DIRECTION_HELP = "up = API->Redis, down = Redis->API, both"
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

    def toxic_params(self) -> dict[str, Any]:
        params = self.params.model_dump()
        params.pop("direction", None)
        return params

    def _probe(self, ctx: FaultContext) -> dict[str, Any]:
        return tcp_ping(*host_port(ctx.proxy.stats()["listen"]))

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        proxy = ctx.proxy  # FaultError here when the stack has no proxy
        self.target = PROXY
        direction = getattr(self.params, "direction", "both")
        toxic_type = self.toxic_type or self.name
        toxic = proxy.add(self.toxic_name(), toxic_type, direction, **self.toxic_params())
        stats = proxy.stats()
        return {
            "toxic": toxic,
            "connections_active": stats["connections_active"],
            "resets": stats["resets"],
            "probe": self._probe(ctx),
        }

    def recover(self, ctx: FaultContext) -> dict[str, Any]:
        proxy = ctx.proxy
        removed = proxy.remove(self.toxic_name())
        stats = proxy.stats()
        return {
            "removed": removed,
            "resets": stats["resets"],
            "toxics_left": stats["toxics"],
            "probe": self._probe(ctx),
        }


class LatencyParams(FaultParams):
    ms: float = toxics.LatencyParams.model_fields["ms"]
    direction: Direction = _direction("down")


class Latency(NetworkFault):
    name = "latency"
    description = "Add fixed latency between the API and Redis (default: to every Redis reply)."
    Params = LatencyParams


class JitterParams(toxics.LatencyParams, FaultParams):
    # The latency toxic's fields, with a smaller base delay and a spread by default.
    ms: float = Field(default=20.0, ge=0, le=toxics.MAX_DELAY_MS, description="base delay")
    jitter_ms: float = Field(
        default=50.0, ge=0, le=toxics.MAX_DELAY_MS, description="uniform +/- spread"
    )
    direction: Direction = _direction("down")


class Jitter(NetworkFault):
    name = "jitter"
    description = "Variable latency between the API and Redis: ms +/- jitter_ms, seeded."
    Params = JitterParams
    toxic_type = "latency"


class ResetParams(toxics.ResetParams, FaultParams):
    pass


class Reset(NetworkFault):
    name = "reset"
    description = (
        "Connection resets between the API and Redis: every open connection is dropped at "
        "inject, new ones are reset with `probability` until recovery."
    )
    Params = ResetParams


class BlackholeParams(toxics.BlackholeParams, FaultParams):
    direction: Direction = _direction("both")


class Blackhole(NetworkFault):
    name = "blackhole"
    description = (
        "Blackhole between the API and Redis: bytes are accepted and never forwarded, so "
        "every Redis call times out (API answers 503)."
    )
    Params = BlackholeParams


class BandwidthParams(toxics.BandwidthParams, FaultParams):
    direction: Direction = _direction("down")


class Bandwidth(NetworkFault):
    name = "bandwidth"
    description = "Throttle the API<->Redis link to kb_per_s KiB/s."
    Params = BandwidthParams
