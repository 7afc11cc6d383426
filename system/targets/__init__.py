"""Backends the lab did not build (target files, flashlab.core.target): start, reset, truth.

`processes.ProcessTarget` and `compose.ComposeTarget` are platforms (flashlab.core.platform)
over the target's own processes or its own Compose file, so faults reach them by role;
`reset.reset_target` puts the stock on sale; `truth.read_target_truth` reads what the backend
really did, from its Redis, its SQL database or its HTTP API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from flashlab.core.errors import UserError
from flashlab.core.placeholders import render
from flashlab.core.platform import StackConfig
from flashlab.core.target import ComposeStart
from flashlab.core.target import TargetSpec

if TYPE_CHECKING:  # the platforms load only when a target starts (start_target)
    from flashlab.system.targets.compose import ComposeTarget
    from flashlab.system.targets.processes import ProcessTarget


def start_target(
    spec: TargetSpec, config: StackConfig, links: frozenset[str]
) -> ProcessTarget | ComposeTarget:
    """The platform that runs `spec`: its Compose file, or its processes (none: already up).
    Not started yet; `.values` holds the placeholders' values once it is."""
    if isinstance(spec.start, ComposeStart):
        # start-up cost: only this path pays for httpx, psutil, rich
        from flashlab.system.targets.compose import ComposeTarget

        return ComposeTarget(spec, config, links)
    # start-up cost: only this path pays for httpx, psutil, rich
    from flashlab.system.targets.processes import ProcessTarget

    return ProcessTarget(spec, config, links)


def target_health(spec: TargetSpec, values: Mapping[str, Any]) -> str | None:
    """The URL that says "serving": `health`, else the first `ready.http` of a worker, else None."""
    path = spec.health
    if path is None:
        path = next((p.ready.http for p in spec.processes() if p.ready and p.ready.http), None)
    if path is None:
        return None
    url = render(path, values)
    if "://" in url:
        return url
    return render(spec.base_url, values).rstrip("/") + "/" + url.lstrip("/")


def require_serving(spec: TargetSpec, values: Mapping[str, Any], own_url: str) -> None:
    """A target the lab did not start must answer at base_url (any HTTP status will do):
    one line naming base_url (exit 2) when nothing answers."""
    # start-up cost: only this path pays for httpx, rich
    import httpx

    url = target_health(spec, values) or own_url
    try:
        httpx.get(url, timeout=5.0)
    except httpx.HTTPError as exc:
        raise UserError(f"base_url: {url} does not answer ({type(exc).__name__}: {exc})") from None
