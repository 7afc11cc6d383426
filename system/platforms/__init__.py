"""Stack platforms behind one interface (`start`, `stop`, `status`, `components`, `signal`), by name.

The interface, its config and its error tree live in flashlab.core.platform; import them from there.
"""

from __future__ import annotations

from flashlab.core.platform import Platform, PlatformConfigError, StackConfig

PLATFORMS: dict[str, str] = {
    # name -> "module:Class"; imported lazily so `local` never needs the Docker SDK.
    "local": "flashlab.system.platforms.local:LocalPlatform",
    "compose": "flashlab.system.platforms.compose:ComposePlatform",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free loopback TCP port (bind port 0, read it, close); the platforms' only way."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def get_platform(name: str, config: StackConfig) -> Platform:
    import importlib

    try:
        target = PLATFORMS[name]
    except KeyError:
        raise PlatformConfigError(
            f"unknown platform {name!r} (allowed: {', '.join(PLATFORMS)})"
        ) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(config)


__all__ = ["PLATFORMS", "free_port", "get_platform"]
