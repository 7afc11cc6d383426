"""The values of the fixed-value options, from the registries: each a Literal, which typer makes a choice.

A Literal-typed option is listed in `--help` (`<inline|process|ray>`), completed by the shell
and checked by the parser: a wrong value is one line naming the flag, exit 2. The names are read
from the registries (flashlab.core.registry) when the CLI starts; listing them imports no engine,
client, platform, strategy or benchmark. mypy sees `str`: the names are known at run time only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal
from typing import TypeAlias

from flashlab.bench import BENCHMARKS
from flashlab.core.contract import Strategy
from flashlab.simulator import CLIENTS
from flashlab.simulator.engines import ENGINES
from flashlab.system.platforms import PLATFORMS

ALL = "all"  # `flashlab bench all`: every benchmark, in declared order


def one_of(names: Iterable[str]) -> Any:
    """A Literal of `names` (a typer choice)."""
    return Literal[tuple(names)]


if TYPE_CHECKING:
    EngineName: TypeAlias = str
    ClientName: TypeAlias = str
    PlatformName: TypeAlias = str
    StrategyName: TypeAlias = str
    BenchName: TypeAlias = str
else:
    EngineName = one_of(ENGINES)
    ClientName = one_of(CLIENTS)
    PlatformName = one_of(PLATFORMS)
    # The strategy registry (flashlab.system.strategies.STRATEGIES) is the contract's enum.
    StrategyName = one_of(s.value for s in Strategy)
    BenchName = one_of([*BENCHMARKS, ALL])
