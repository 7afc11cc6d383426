"""Registries are enumerated, not hard-coded: every registered strategy loads and owns a settings model."""

from __future__ import annotations

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
