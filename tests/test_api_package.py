"""The API package: each module says its one job first, and strategies' traits steer the service."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest

from flashlab.system.api.service import ShopService
from flashlab.system.keys import ProductKeys
from flashlab.system.settings import Settings
from flashlab.system.strategies import STRATEGIES
from flashlab.system.strategies import strategy_class

API = Path(__file__).resolve().parents[1] / "system" / "api"


@pytest.mark.parametrize("path", sorted(API.glob("*.py")), ids=lambda p: p.name)
def test_every_api_module_says_its_one_job_in_its_first_docstring_line(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{path.name}: no module docstring"
    first = doc.splitlines()[0]
    assert first.endswith(".") and len(first) > 20, f"{path.name}: first line {first!r}"


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_the_service_trusts_a_cached_meta_only_when_the_strategy_rechecks_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service names no strategy: a strategy whose scripts re-check the product's strategy
    # (`rechecks_strategy`) is served a cached meta; any other gets meta read afresh.
    service = ShopService(Settings())
    reads: list[str] = []

    async def hgetall(key: str) -> dict[str, Any]:
        reads.append(key)
        return {"strategy": name, "stock_initial": "1", "price_cents": "1"}

    monkeypatch.setattr(service.backend.redis, "hgetall", hgetall)

    async def twice() -> None:
        for _ in range(2):
            meta = await service.cached_meta(ProductKeys("p-trait"))
            assert meta is not None and meta.strategy == name

    asyncio.run(twice())
    assert len(reads) == (1 if strategy_class(name).rechecks_strategy else 2)
