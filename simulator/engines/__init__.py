"""The engine registry: name -> engine class. A new engine is one module plus one line here."""

from __future__ import annotations

import importlib

from flashlab.simulator.engines.base import Engine, EngineResult, LoadPlan

__all__ = ["ENGINES", "Engine", "EngineResult", "LoadPlan", "engine_names", "get_engine"]

# Imported lazily so `inline` never pays for Ray's import.
ENGINES: dict[str, str] = {
    "inline": "flashlab.simulator.engines.inline:InlineEngine",
    "process": "flashlab.simulator.engines.process:ProcessEngine",
    "ray": "flashlab.simulator.engines.ray_engine:RayEngine",
}


def engine_names() -> list[str]:
    return sorted(ENGINES)


def get_engine(name: str) -> Engine:
    """A fresh engine instance (one per run: it holds that run's workers)."""
    if name not in ENGINES:
        raise ValueError(f"engine: unknown {name!r} (allowed: {', '.join(engine_names())})")
    module, cls = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)()
