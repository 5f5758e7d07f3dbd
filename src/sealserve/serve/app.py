"""The app factory: one FastAPI app per config, its registry passed in or built here, never global."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.routing import Route

from sealserve.serve import admin, health, native
from sealserve.serve.config import ServiceConfig, load_config
from sealserve.serve.dataplane import DataPlane
from sealserve.serve.error_handlers import install_error_handlers
from sealserve.serve.fanout import RUNTIME_ENV, WorkerSync
from sealserve.serve.hot_routes import HotRoutes
from sealserve.serve.openapi import ModelDescription, build_openapi
from sealserve.serve.protocols import StandardProtocols
from sealserve.serve.registry import ModelRegistry
from sealserve.serve.reload import Reloader

CONFIG_ENV = "SEALSERVE_CONFIG"
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(config: ServiceConfig, registry: ModelRegistry | None = None, *, load_before_serving: bool = False) -> FastAPI:
    """Build the app. Models load in the background so probes can report progress, or, with several
    worker processes sharing one socket, before the worker accepts connections (no worker answers unloaded)."""
    models = registry if registry is not None else ModelRegistry(list(config.models), cache_dir=config.storage.cache_dir)
    dataplane = DataPlane(models, config.limits, config.batching)
    protocols = StandardProtocols(models, dataplane, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        protocols.start()  # the gRPC port, when configured (first: a port in use fails start-up at once); REST ones are routers
        # One thread owns loading, start-up retries and alias polling (hot reload); it stops with the app.
        # With several workers it also applies the admin actions every worker must apply (fanout.py).
        reloader = app.state.reloader = Reloader(models, config.storage, sync=getattr(app.state, "fanout", None))
        if load_before_serving:
            await asyncio.to_thread(reloader.load_initial)
        reloader.start(initial=not load_before_serving)
        yield
        await protocols.stop()
        await asyncio.to_thread(reloader.stop)
        await dataplane.close()

    app = FastAPI(
        title=config.service_title,
        description=config.description,
        version=config.version,
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,  # FastAPI's OpenTelemetry probe reads the environment on every request
    )
    app.state.registry = models
    app.state.dataplane = dataplane
    app.state.protocols = protocols
    install_error_handlers(app)
    hot: list[Route] = []
    app.include_router(native.build_router(models, config.limits, dataplane, hot))
    app.include_router(health.build_router(models))
    if config.admin.enabled:
        app.include_router(admin.build_router(models))
    for router in protocols.routers(hot):
        app.include_router(router)
    app.add_middleware(HotRoutes, routes=hot)

    def openapi() -> dict[str, Any]:
        return build_openapi(app, [ModelDescription.of_model(served.name, served.model) for served in models.served])

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_environment() -> FastAPI:
    """Factory for multi-worker serving: the config path comes from SEALSERVE_CONFIG; the runtime folder the
    workers share for admin actions (fanout.py) from SEALSERVE_WORKERS_DIR, made by `sealserve serve`."""
    app = create_app(load_config(Path(os.environ[CONFIG_ENV])), load_before_serving=True)
    runtime = os.environ.get(RUNTIME_ENV)
    if runtime:
        app.state.fanout = WorkerSync(Path(runtime), app.state.registry)
    return app
