"""The engine registry: name -> engine class. A new engine is one module plus one line here.

Listing the names imports no engine (the CLI's `--engine` choices, the experiment schema); the
interface they implement is flashlab.simulator.engines.engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flashlab.core.registry import Registry

if TYPE_CHECKING:
    from flashlab.simulator.engines.engine import Engine

__all__ = ["ENGINES", "get_engine", "require_engine"]

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


def require_engine(name: str) -> None:
    """Raise flashlab.core.extras.MissingExtra (one line, exit 2) when `name` needs an extra not installed."""
    ENGINES.require(name)


def get_engine(name: str) -> Engine:
    """A fresh engine instance (one per run: it holds that run's workers)."""
    engine: Engine = ENGINES.load(name)()
    return engine
