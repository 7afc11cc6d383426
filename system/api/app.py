"""The app factory: one worker's FastAPI app, with its service, exception handlers, routes and fast lane.

uvicorn runs it as `flashlab.system.api.app:create_app --factory` (`flashlab.system.config.uvicorn_argv`,
the Dockerfile's CMD, docker-compose.yml), configured from the FLASHLAB_* environment.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from flashlab.system.api.edge import EdgeMiddleware
from flashlab.system.api.exception_handlers import install_exception_handlers
from flashlab.system.api.routes import install_routes
from flashlab.system.api.service import ShopService
from flashlab.system.settings import Settings
from flashlab.system.settings import SettingsError


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app for one worker. Bad FLASHLAB_* environment -> one line on stderr, exit 2."""
    if settings is None:
        settings = _settings_from_env()
    service = ShopService(settings)
    app = FastAPI(
        title="flashlab flash-sale API",
        version="1",
        lifespan=_lifespan,
        # FastAPI's native OpenTelemetry hooks cost a provider lookup per request; we export
        # Prometheus metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = service
    install_exception_handlers(app)
    install_routes(app, service)
    app.add_middleware(EdgeMiddleware, service=service)
    return app


def _settings_from_env() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.service.close()
