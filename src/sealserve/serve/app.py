"""The app factory: one FastAPI app per config, its registry passed in or built here, never global."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sealserve.serve import health, native
from sealserve.serve.config import ServiceConfig, load_config
from sealserve.serve.errors import install_error_handlers
from sealserve.serve.openapi import ModelDescription, build_openapi
from sealserve.serve.registry import ModelRegistry

CONFIG_ENV = "SEALSERVE_CONFIG"


def create_app(config: ServiceConfig, registry: ModelRegistry | None = None, *, load_before_serving: bool = False) -> FastAPI:
    """Build the app. Models load in the background so probes can report progress, or, with several
    worker processes sharing one socket, before the worker accepts connections (no worker answers unloaded)."""
    models = registry if registry is not None else ModelRegistry(list(config.models))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(asyncio.to_thread(models.load_all))
        if load_before_serving:
            await loading
        yield
        loading.cancel()

    app = FastAPI(title=config.service_title, description=config.description, version=config.version, lifespan=lifespan)
    app.state.registry = models
    install_error_handlers(app)
    app.include_router(native.build_router(models, config.limits))
    app.include_router(health.build_router(models))

    def openapi() -> dict[str, Any]:
        return build_openapi(app, [ModelDescription.of_model(served.name, served.model) for served in models.served])

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_environment() -> FastAPI:
    """Factory for multi-worker serving: the config path comes from SEALSERVE_CONFIG."""
    return create_app(load_config(Path(os.environ[CONFIG_ENV])), load_before_serving=True)
