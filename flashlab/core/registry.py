"""The registry of an extension point: name -> `"package.module:Name"`, imported on use.

Every extension point (strategies, platforms, engines, faults, checks, benchmarks) maps a name to
such a reference, so listing the names never imports the implementations (nor their heavy
dependencies). A `Registry` adds the one "unknown name" error every lookup gives and the optional
extra (flashlab.core.extras) an entry may need:

    FAULTS = Registry("fault", {"redis-kill": "flashlab.chaos.faults.redis:RedisKill", ...})
    FAULTS.load("redis-kill")   # the class
    FAULTS.load("nope")         # ValueError: unknown fault 'nope' (allowed: redis-kill, ...)

A registry is also the type of a field that names one of its entries, so the names an experiment
file, its JSON Schema and the CLI accept are the registry's and nothing else:

    kind: Annotated[str, ENGINES] = "process"   # checked by ENGINES.check; schema enum: its names
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from pydantic_core import core_schema

from flashlab.core.extras import require as require_extra

REGISTRY_KEY = "x-registry"  # marks a JSON Schema node whose `enum` is a registry's names


def load(ref: str) -> Any:
    """What `ref` names: `"pkg.mod:Name"` -> that attribute; `"pkg.mod"` -> the module itself."""
    module, _, attr = ref.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


class Registry(Mapping[str, str]):
    """One extension point's entries (a read-only mapping name -> reference, in declared order)."""

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, str],
        *,
        extras: Mapping[str, str] | None = None,
        error: type[Exception] = ValueError,
    ) -> None:
        self.kind = kind  # what one entry is called in messages: "fault", "engine", ...
        self._entries = dict(entries)
        self.extras = dict(extras or {})  # name -> the optional extra it needs
        self._error = error

    def __getitem__(self, name: str) -> str:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """The names in declared order."""
        return list(self._entries)

    def ref(self, name: str) -> str:
        """The reference registered under `name`; the registry's error naming the allowed names."""
        if name not in self._entries:
            allowed = ", ".join(sorted(self._entries)) or "none registered"
            raise self._error(f"unknown {self.kind} {name!r} (allowed: {allowed})")
        return self._entries[name]

    def check(self, name: Any) -> Any:
        """`name` itself when it is registered; else the registry's one-line error."""
        self.ref(name)
        return name

    def require(self, name: str) -> None:
        """Raise MissingExtra (one line, exit 2) when `name` needs an extra that is not installed."""
        if name in self.extras:
            require_extra(self.extras[name], f"{self.kind} {name!r}")

    def load(self, name: str) -> Any:
        """The implementation registered under `name` (its extra checked before the import)."""
        ref = self.ref(name)
        self.require(name)
        return load(ref)

    # As pydantic metadata (`Annotated[str, REGISTRY]`): the value must be a registered name.

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Inline (no $ref to an enum's definition); `x-registry` marks the names as open: a new
        # entry is not a change of the experiment file's contract (flashlab.lab.json_schemas).
        return {"type": "string", "enum": self.names(), REGISTRY_KEY: self.kind}


def doc_summary(cls: type) -> str | None:
    """The first paragraph of `cls`'s own docstring on one line; None when it has none.

    An extension (a fault, a check) is described by its docstring: the text a reader of the code
    sees is the text the catalogue, the docs and the report show (pydoc's convention)."""
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return None
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
