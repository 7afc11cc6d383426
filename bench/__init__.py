"""The benchmark registry: name -> module.

A new benchmark is one module (with `NAME` and `run(ctx) -> dict`) plus one line here."""

from __future__ import annotations

from types import ModuleType

from flashlab.core.registry import Registry

BENCHMARKS = Registry(
    "benchmark",
    {
        "ceiling": "flashlab.bench.ceiling",
        "simulator": "flashlab.bench.simulator",
        "scale": "flashlab.bench.scale",
        "reference": "flashlab.bench.reference",
        "chaos": "flashlab.bench.chaos_cost",
        "stability": "flashlab.bench.stability",
        "actors": "flashlab.bench.actors",
    },
)


def bench_names() -> list[str]:
    """In declared order: the order `flashlab bench all` runs them."""
    return BENCHMARKS.names()


def get_bench(name: str) -> ModuleType:
    return BENCHMARKS.load(name)
