"""Scenario and behaviour-profile models: who arrives when, and what each shopper does with an answer.

Pydantic models. An arrival kind is one class here with `offsets(n, rng)` (sorted seconds after
t0) plus one entry in the `Arrival` union. Turning a scenario into a concrete, seeded list of
shoppers is `flashlab.simulator.schedule`; driving them is `flashlab.simulator.engines`.
"""

from __future__ import annotations

from typing import Annotated
from typing import Literal

import numpy as np
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Spike(_Model):
    """Everyone arrives within `window_s` (uniformly)."""

    kind: Literal["spike"] = "spike"
    window_s: float = Field(default=1.0, gt=0, le=3600)

    def offsets(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.sort(rng.uniform(0.0, self.window_s, n))


class Ramp(_Model):
    """Arrival rate grows linearly from 0 over `duration_s`."""

    kind: Literal["ramp"] = "ramp"
    duration_s: float = Field(default=10.0, gt=0, le=3600)

    def offsets(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # Rate grows linearly from 0, so the arrival CDF is (t/D)^2 and its inverse is D*sqrt(u).
        return np.sort(self.duration_s * np.sqrt(rng.uniform(0.0, 1.0, n)))


class Waves(_Model):
    """`count` spikes of `width_s`, one every `period_s`."""

    kind: Literal["waves"] = "waves"
    count: int = Field(default=3, ge=1, le=1000)
    period_s: float = Field(default=2.0, gt=0, le=3600)
    width_s: float = Field(default=0.2, gt=0, le=3600)

    def offsets(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # Equal shares per wave (the first waves take the remainder), uniform inside each wave.
        wave = np.arange(n) % self.count
        return np.sort(wave * self.period_s + rng.uniform(0.0, self.width_s, n))


class Poisson(_Model):
    """Exponential inter-arrival times at `rate_per_s`."""

    kind: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(default=1000.0, gt=0, le=10_000_000)

    def offsets(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.cumsum(rng.exponential(1.0 / self.rate_per_s, n))


# The arrival registry: a new kind is one class above plus one entry here.
Arrival = Annotated[Spike | Ramp | Waves | Poisson, Field(discriminator="kind")]


class Stage(_Model):
    """Closed model, k6 style: move linearly to `target` VUs over `duration_s`."""

    duration_s: float = Field(gt=0, le=3600)
    target: int = Field(ge=0, le=1_000_000)


RetryOn = Literal["busy", "backend_unavailable", "timeout", "connection", "gateway", "rate_limited"]


class Profile(_Model):
    """A behaviour: how a shopper reacts to answers. Profiles mix by `weight`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,32}$")
    weight: float = Field(default=1.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=10_000)  # patience, in attempts
    max_wait_s: float = Field(default=30.0, gt=0, le=3600)  # patience, in time since arrival
    backoff_base_ms: float = Field(default=50.0, ge=0, le=600_000)
    backoff_max_ms: float = Field(default=2_000.0, ge=0, le=600_000)
    backoff_multiplier: float = Field(default=2.0, ge=1.0, le=100)
    jitter: Literal["none", "full", "equal"] = "full"
    honor_retry_after: bool = False  # wait at least the server's Retry-After on 409 busy
    think_ms: tuple[float, float] = (0.0, 0.0)  # uniform think time before each attempt
    retry_on: list[RetryOn] = Field(
        default_factory=lambda: list[RetryOn](
            [
                "busy",
                "backend_unavailable",
                "timeout",
                "connection",
                "gateway",
                "rate_limited",
            ]
        )
    )

    @model_validator(mode="after")
    def _ranges(self) -> Profile:
        if self.think_ms[0] < 0 or self.think_ms[1] < self.think_ms[0]:
            raise ValueError("think_ms must be [min, max] with 0 <= min <= max")
        if self.backoff_max_ms < self.backoff_base_ms:
            raise ValueError("backoff_max_ms must be >= backoff_base_ms")
        return self


DEFAULT_PROFILES: list[Profile] = [
    Profile(name="patient", weight=0.6, max_attempts=8, max_wait_s=20.0),
    Profile(name="impatient", weight=0.3, max_attempts=2, max_wait_s=3.0),
    Profile(
        name="bot",
        weight=0.1,
        max_attempts=20,
        max_wait_s=10.0,
        backoff_base_ms=0.0,
        backoff_max_ms=0.0,
        jitter="none",
    ),
]


class Scenario(_Model):
    shoppers: int = Field(default=1_000, ge=1, le=1_000_000)
    model: Literal["open", "closed"] = "open"
    arrival: Arrival = Field(default_factory=Spike)
    # closed model only: VU stages (k6 style) and think time between a VU's iterations;
    # each iteration is a new shopper, until `shoppers` iterations or `duration_s`.
    stages: list[Stage] = Field(default_factory=list)
    vu_think_s: tuple[float, float] = (1.0, 3.0)
    duration_s: float = Field(default=60.0, gt=0, le=3600)  # hard cap on the whole load
    request_timeout_s: float = Field(default=5.0, gt=0, le=120)
    profiles: list[Profile] = Field(default_factory=lambda: list(DEFAULT_PROFILES), min_length=1)

    @model_validator(mode="after")
    def _closed_needs_stages(self) -> Scenario:
        if self.model == "closed" and not self.stages:
            raise ValueError(
                "closed model needs at least one stage (stages: [{duration_s, target}])"
            )
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError("profile names must be unique")
        return self
