"""API worker settings: the FLASHLAB_* environment a worker is started with, parsed and bounded."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from flashlab.core.errors import UserError


class SettingsError(UserError, ValueError):
    """One environment variable is malformed; the message names it."""


def _int_env(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    admin_token: str | None = None  # None disables /admin/* (every call answers 403)
    redis_timeout_ms: int = 500
    redis_pool_size: int = 64
    worker_id: str = ""
    multiproc_dir: str | None = None

    @property
    def redis_timeout_s(self) -> float:
        return self.redis_timeout_ms / 1000.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        url = env.get("FLASHLAB_REDIS_URL", "").strip() or cls.redis_url
        if not url.startswith(("redis://", "unix://")):
            raise SettingsError(f"FLASHLAB_REDIS_URL={url!r} must start with redis:// or unix://")
        return cls(
            redis_url=url,
            admin_token=env.get("FLASHLAB_ADMIN_TOKEN") or None,
            redis_timeout_ms=_int_env(env, "FLASHLAB_REDIS_TIMEOUT_MS", 500, 1, 600_000),
            redis_pool_size=_int_env(env, "FLASHLAB_REDIS_POOL_SIZE", 64, 1, 100_000),
            worker_id=env.get("FLASHLAB_WORKER_ID") or f"pid-{os.getpid()}",
            multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )
