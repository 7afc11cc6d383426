"""Stack platforms behind one interface (`start`, `stop`, `status`, `components`, `signal`), by name.

The interface, its config and its error tree live in flashlab.core.platform; import them from there.
"""

from __future__ import annotations

import socket

from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackConfig
from flashlab.core.registry import Registry
from flashlab.core.registry import load

# name -> "module:Class"; imported lazily so `local` never needs the Docker SDK (the `compose` extra).
PLATFORMS = Registry(
    "platform",
    {
        "local": "flashlab.system.platforms.local:LocalPlatform",
        "compose": "flashlab.system.platforms.compose:ComposePlatform",
    },
    extras={"compose": "compose"},
    error=PlatformConfigError,
)
# Platforms that need the repository itself (not only the installed package), and why.
PLATFORM_NEEDS_CHECKOUT: dict[str, str] = {
    "compose": "it builds its images from the repository's Dockerfile and docker-compose.yml"
}


def require_platform(name: str) -> None:
    """Raise a UserError (one line, exit 2) when `name` needs an extra or a checkout that is not here."""
    PLATFORMS.require(name)
    if name in PLATFORM_NEEDS_CHECKOUT:
        # start-up cost: only this path pays for importlib.metadata and subprocess
        from flashlab.core.provenance import require_checkout

        require_checkout(f"platform {name!r} ({PLATFORM_NEEDS_CHECKOUT[name]})")


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free loopback TCP port (bind port 0, read it, close); the platforms' only way."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def get_platform(name: str, config: StackConfig) -> Platform:
    target = PLATFORMS.ref(name)  # PlatformConfigError naming the allowed platforms
    require_platform(name)
    return load(target)(config)


__all__ = ["PLATFORMS", "free_port", "get_platform", "require_platform"]
