"""The toxics: their parameter models (the one home of bounds and defaults) and a toxic's live form.

Toxics (direction "up" = client->upstream, "down" = upstream->client, "both"):
latency {ms, jitter_ms, seed}, reset {probability, seed}, blackhole {}, bandwidth {kb_per_s},
timeout {ms}. The network faults (flashlab.chaos.faults.network) build their Params on these
models; the server validates every POSTed toxic against them (`parse_toxic`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError

from flashlab.core.validation import first_error

Direction = Literal["up", "down", "both"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The one home of the toxics' bounds and defaults: the network faults
# (flashlab.chaos.faults.network) build their Params on these models.
MAX_DELAY_MS = 60_000


class LatencyParams(_Params):
    ms: float = Field(default=100.0, ge=0, le=MAX_DELAY_MS, description="delay added per chunk")
    # uniform in [-jitter, +jitter], floor 0
    jitter_ms: float = Field(default=0.0, ge=0, le=MAX_DELAY_MS, description="uniform +/- spread")
    seed: int = Field(default=0, description="seed of the jitter's random stream")


class ResetParams(_Params):
    probability: float = Field(
        default=1.0, ge=0, le=1, description="chance each new connection is reset"
    )
    seed: int = Field(default=0, description="seed of the reset draw")


class BlackholeParams(_Params):
    pass


class BandwidthParams(_Params):
    # 16 KiB/s, the fault's long-standing default (what experiments ran with): a link that
    # slow visibly delays Redis replies; the proxy's former 64 was only ever its own fallback.
    kb_per_s: float = Field(default=16.0, gt=0, le=10_000_000, description="KiB/s limit")


class TimeoutParams(_Params):
    ms: float = Field(default=1_000.0, ge=0, le=600_000)  # drop data, close the connection after ms


TOXIC_PARAMS: dict[str, type[_Params]] = {
    "latency": LatencyParams,
    "reset": ResetParams,
    "blackhole": BlackholeParams,
    "bandwidth": BandwidthParams,
    "timeout": TimeoutParams,
}


class ToxicSpec(BaseModel):
    """What a client POSTs; `params` is validated against the type's own model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    type: Literal["latency", "reset", "blackhole", "bandwidth", "timeout"]
    direction: Direction = "both"
    params: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Toxic:
    name: str
    type: str
    direction: Direction
    params: Any  # one of the *Params models
    rng: random.Random = field(default_factory=random.Random)

    def applies(self, direction: str) -> bool:
        return self.direction in ("both", direction)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "direction": self.direction,
            "params": self.params.model_dump(),
        }


def parse_toxic(body: Any) -> Toxic:
    """Validate a POST body; raises ValueError with one line naming the bad field."""
    try:
        spec = ToxicSpec.model_validate(body)
    except ValidationError as exc:
        raise ValueError(first_error(exc, empty="body")) from None
    try:
        params = TOXIC_PARAMS[spec.type].model_validate(spec.params)
    except ValidationError as exc:
        raise ValueError(first_error(exc, prefix="params.", empty="body")) from None
    seed = getattr(params, "seed", 0)
    return Toxic(spec.name, spec.type, spec.direction, params, random.Random(seed))
