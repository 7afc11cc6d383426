"""Registries are enumerated, not hard-coded: every entry loads, and every name the lab accepts (experiment
fields, their JSON Schema, strategy traits) comes from its registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flashlab.core.contract import Strategy
from flashlab.lab.experiment import ExperimentError
from flashlab.lab.experiment import parse_experiment
from flashlab.system.strategies import PurchaseStrategy
from flashlab.system.strategies import settings_model
from flashlab.system.strategies import strategy_class


@pytest.mark.parametrize("name", [s.value for s in Strategy])
def test_every_contract_strategy_has_an_implementation_and_a_settings_model(name: str) -> None:
    cls = strategy_class(name)
    assert issubclass(cls, PurchaseStrategy) and cls.name == name
    model = settings_model(name)
    assert issubclass(model, BaseModel)
    assert model.model_config.get("extra") == "forbid"  # a typo in a setting is an error
    model()  # every setting has a default: a reset without settings is valid


def test_experiment_settings_go_to_their_own_strategy_only() -> None:
    exp = parse_experiment(
        {"product": {"strategy": "lock", "settings": {"lock_ttl_ms": 500, "naive_delay_ms": 2}}}
    )
    assert exp.product.reset_request().settings == {"lock_ttl_ms": 500}


@pytest.mark.parametrize(
    ("settings", "needle"),
    [({"lock_tll_ms": 5}, "did you mean 'lock_ttl_ms'"), ({"lock_ttl_ms": 1}, "lock_ttl_ms")],
)
def test_bad_settings_are_refused_naming_the_key(settings: dict, needle: str) -> None:
    with pytest.raises(ExperimentError, match=r"product\.settings") as err:
        parse_experiment({"product": {"strategy": "lock", "settings": settings}})
    assert needle in str(err.value)


def _registry_fields() -> list[
    tuple[str, Any, Callable[[str], dict[str, Any]], Callable[[Any], str]]
]:
    """(JSON Schema path, registry, experiment data naming one entry, where the parsed
    experiment has it) for every field that names a registry entry."""
    from flashlab.chaos.faults import FAULTS
    from flashlab.simulator import CLIENTS
    from flashlab.simulator.engines import ENGINES
    from flashlab.system.platforms import PLATFORMS
    from flashlab.system.strategies import STRATEGIES

    return [
        ("EngineSpec.kind", ENGINES, lambda n: {"engine": {"kind": n}}, lambda e: e.engine.kind),
        (
            "EngineSpec.client",
            CLIENTS,
            lambda n: {"engine": {"client": n}},
            lambda e: e.engine.client,
        ),
        (
            "StackSpec.platform",
            PLATFORMS,
            lambda n: {"stack": {"platform": n}},
            lambda e: e.stack.platform,
        ),
        (
            "ProductSpec.strategy",
            STRATEGIES,
            lambda n: {"product": {"strategy": n}},
            lambda e: e.product.strategy,
        ),
        (
            "FaultSpec.fault",
            FAULTS,
            lambda n: {"faults": [{"fault": n, "at_s": 1}]},
            lambda e: e.faults[0].fault,
        ),
    ]


@pytest.mark.parametrize("index", range(5))
def test_experiment_fields_take_exactly_their_registrys_names(index: int) -> None:
    from flashlab.core.registry import REGISTRY_KEY
    from flashlab.lab.json_schemas import generate

    where, registry, data, parsed = _registry_fields()[index]
    model, field = where.split(".")
    node = generate("experiment")["$defs"][model]["properties"][field]
    assert node["enum"] == registry.names() and node[REGISTRY_KEY] == registry.kind
    for name in registry:
        assert parsed(parse_experiment(data(name))) == name
    with pytest.raises(ExperimentError, match=rf"unknown {registry.kind} 'warp-9' \(allowed: "):
        parse_experiment(data("warp-9"))


def test_registry_names_are_open_in_the_schema_hash() -> None:
    """A new engine (any registry entry) is no contract change: the hash leaves the names out."""
    from flashlab.lab.json_schemas import content_hash
    from flashlab.lab.json_schemas import generate

    schema = generate("experiment")
    grown = json.loads(json.dumps(schema))
    grown["$defs"]["EngineSpec"]["properties"]["kind"]["enum"].append("toy")
    assert content_hash(grown) == content_hash(schema)
    grown["$defs"]["EngineSpec"]["properties"]["workers"]["maximum"] += 1
    assert content_hash(grown) != content_hash(schema)  # anything else still counts


@pytest.mark.parametrize("name", [s.value for s in Strategy])
def test_strategy_behaviour_is_a_declared_trait(name: str) -> None:
    """The API and the lab read a strategy's traits, never its name (system/api, lab/matrix)."""
    from flashlab.system.strategies import needs_queue_protocol

    cls = strategy_class(name)
    for trait in ("rechecks_strategy", "waiting_room", "safe"):
        assert isinstance(getattr(cls, trait), bool), (name, trait)
    if cls.waiting_room:  # the queue endpoints call these
        assert callable(getattr(cls, "join", None)) and callable(getattr(cls, "status", None))
    assert needs_queue_protocol(name) is cls.waiting_room


def test_no_strategy_is_named_by_the_api() -> None:
    names = [s.value for s in Strategy]
    api = Path(__file__).resolve().parent.parent / "system" / "api"
    for path in sorted(api.glob("*.py")):
        text = path.read_text()
        for name in names:
            assert f"Strategy.{name}" not in text and f'"{name}"' not in text, (path.name, name)


def test_a_registry_names_its_kind_and_the_allowed_names_for_an_unknown_entry() -> None:
    from flashlab.core.registry import Registry

    reg = Registry("widget", {"b": "json:dumps", "a": "json"}, error=KeyError)
    assert reg.names() == ["b", "a"] and dict(reg) == {"b": "json:dumps", "a": "json"}
    assert reg.load("b") is json.dumps and reg.load("a") is json
    with pytest.raises(KeyError, match=r"unknown widget 'c' \(allowed: a, b\)"):
        reg.load("c")


def test_every_registry_refuses_an_unknown_name_in_one_line() -> None:
    from flashlab.bench import get_bench
    from flashlab.chaos.faults import fault_class
    from flashlab.core.platform import PlatformConfigError
    from flashlab.simulator.engines import ENGINES
    from flashlab.simulator.engines import get_engine
    from flashlab.system.platforms import get_platform

    with pytest.raises(ValueError, match=r"^unknown fault 'x' \(allowed: .*redis-kill"):
        fault_class("x")
    engines = ", ".join(sorted(ENGINES))
    with pytest.raises(ValueError, match=rf"^unknown engine 'x' \(allowed: {engines}\)$"):
        get_engine("x")
    with pytest.raises(PlatformConfigError, match=r"^unknown platform 'x' \(allowed: compose, "):
        get_platform("x", None)  # type: ignore[arg-type]  # refused before the config is read
    with pytest.raises(ValueError, match=r"^unknown benchmark 'x' \(allowed: actors, "):
        get_bench("x")


def test_an_extension_is_described_by_the_first_paragraph_of_its_own_docstring() -> None:
    from flashlab.analysis.checker import LOADED_CHECKS
    from flashlab.chaos.faults import FAULTS
    from flashlab.chaos.faults import fault_class
    from flashlab.core.registry import doc_summary

    class Described:
        """One line
        wrapped.

        Details that stay in the code."""

    class Undescribed(Described):
        pass

    assert doc_summary(Described) == "One line wrapped." and doc_summary(Undescribed) is None
    for check in LOADED_CHECKS.values():
        assert check.description == doc_summary(type(check)), check.name
    for name in FAULTS:
        cls = fault_class(name)
        # network faults are made by `network_fault(...)`, which passes the description itself
        assert cls.description and cls.description == (doc_summary(cls) or cls.description)
