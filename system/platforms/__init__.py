"""Stack platforms behind one interface (`start`, `stop`, `status`, `components`, `signal`), by name.

The interface, its config and its error tree live in flashlab.core.platform; import them from there.
"""

from __future__ import annotations

from flashlab.core.platform import Platform
from flashlab.core.platform import PlatformConfigError
from flashlab.core.platform import StackConfig
from flashlab.core.registry import load

PLATFORMS: dict[str, str] = {
    # name -> "module:Class"; imported lazily so `local` never needs the Docker SDK.
    "local": "flashlab.system.platforms.local:LocalPlatform",
    "compose": "flashlab.system.platforms.compose:ComposePlatform",
}
# Platforms that need an optional extra (pyproject [project.optional-dependencies]).
PLATFORM_EXTRAS: dict[str, str] = {"compose": "compose"}
# Platforms that need the repository itself (not only the installed package), and why.
PLATFORM_NEEDS_CHECKOUT: dict[str, str] = {
    "compose": "it builds its images from the repository's Dockerfile and docker-compose.yml"
}


def require_platform(name: str) -> None:
    """Raise a UserError (one line, exit 2) when `name` needs an extra or a checkout that is not here."""
    if name in PLATFORM_EXTRAS:
        from flashlab.core.extras import require

        require(PLATFORM_EXTRAS[name], f"platform {name!r}")
    if name in PLATFORM_NEEDS_CHECKOUT:
        from flashlab.core.meta import require_checkout

        require_checkout(f"platform {name!r} ({PLATFORM_NEEDS_CHECKOUT[name]})")


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free loopback TCP port (bind port 0, read it, close); the platforms' only way."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def get_platform(name: str, config: StackConfig) -> Platform:
    try:
        target = PLATFORMS[name]
    except KeyError:
        raise PlatformConfigError(
            f"unknown platform {name!r} (allowed: {', '.join(PLATFORMS)})"
        ) from None
    require_platform(name)
    return load(target)(config)


__all__ = ["PLATFORMS", "free_port", "get_platform", "require_platform"]
