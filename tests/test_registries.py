"""Registries are enumerated, not hard-coded: every registered strategy loads and owns a settings model."""

from __future__ import annotations

import json

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


def test_platform_names_are_the_platform_registry() -> None:
    # One list of names (flashlab.core.platform) for experiments and the CLI; one registry of
    # classes (flashlab.system.platforms): they must name the same platforms.
    from flashlab.core.platform import PLATFORM_NAMES
    from flashlab.system.platforms import PLATFORMS

    assert set(PLATFORM_NAMES) == set(PLATFORMS)


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
    from flashlab.simulator.engines import get_engine
    from flashlab.system.platforms import get_platform

    with pytest.raises(ValueError, match=r"^unknown fault 'x' \(allowed: .*redis-kill"):
        fault_class("x")
    with pytest.raises(ValueError, match=r"^unknown engine 'x' \(allowed: inline, process, ray\)$"):
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
