"""The engine registry: name -> engine class. A new engine is one module plus one line here."""

from __future__ import annotations

from flashlab.core.registry import Registry
from flashlab.simulator.engines.engine import Engine
from flashlab.simulator.engines.engine import EngineResult
from flashlab.simulator.engines.engine import LoadPlan

__all__ = [
    "ENGINES",
    "Engine",
    "EngineResult",
    "LoadPlan",
    "engine_names",
    "get_engine",
    "require_engine",
]

# Imported lazily so `inline` never pays for Ray's import; `ray` needs the `ray` extra.
ENGINES = Registry(
    "engine",
    {
        "inline": "flashlab.simulator.engines.inline:InlineEngine",
        "process": "flashlab.simulator.engines.process:ProcessEngine",
        "ray": "flashlab.simulator.engines.ray_engine:RayEngine",
    },
    extras={"ray": "ray"},
)


def engine_names() -> list[str]:
    return sorted(ENGINES)


def require_engine(name: str) -> None:
    """Raise flashlab.core.extras.MissingExtra (one line, exit 2) when `name` needs an extra not installed."""
    ENGINES.require(name)


def get_engine(name: str) -> Engine:
    """A fresh engine instance (one per run: it holds that run's workers)."""
    return ENGINES.load(name)()
