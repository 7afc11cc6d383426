"""The one way a registry entry names its implementation: `"package.module:Name"`, imported on use.

Every extension point (strategies, platforms, engines, faults, checks, benchmarks) is a dict from
name to such a reference, so listing the names never imports the implementations (nor their
heavy dependencies); each registry keeps its own "unknown name" error.
"""

from __future__ import annotations

import importlib
from typing import Any


def load(ref: str) -> Any:
    """What `ref` names: `"pkg.mod:Name"` -> that attribute; `"pkg.mod"` -> the module itself."""
    module, _, attr = ref.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded
