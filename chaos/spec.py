"""A fault schedule entry as an experiment file states it: which fault, when, for how long, params."""

from __future__ import annotations

from typing import Annotated
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from flashlab.chaos.faults import FAULTS
from flashlab.chaos.faults import fault_param_error


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Repeat(_Model):
    every_s: float = Field(gt=0, le=3600)
    count: int = Field(ge=1, le=1000)


class FaultSpec(_Model):
    fault: Annotated[str, FAULTS]  # a registered fault (the one "unknown fault" error)
    at_s: float = Field(ge=0, le=3600)  # seconds after the load starts
    duration_s: float = Field(default=0.0, ge=0, le=3600)
    params: dict[str, Any] = Field(default_factory=dict)
    repeat: Repeat | None = None

    @model_validator(mode="after")
    def _params(self) -> FaultSpec:
        problem = fault_param_error(self.fault, self.params)
        if problem:
            raise ValueError(f"params: {problem}")
        return self
