"""Liveness, readiness and start-up probes; readiness means every configured model is verified and loaded, and no stop is under way."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from sealserve.serve.config import BundleSource
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.request import paths
from sealserve.serve.request.responses import describe_state, json_response


def build_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(prefix=paths.NATIVE_HEALTH, tags=["health"])

    def report(ok: bool) -> Response:
        models = [describe_state(state) for state in registry.states]
        status = "ok" if ok else "stopping" if registry.stopping else "unavailable"
        body = {"status": status, "storage": storage_report(registry), "models": models}
        return json_response(body, status=200 if ok else 503)

    @router.get("", summary="Liveness: the process answers")
    async def live() -> Response:
        return json_response({"status": "ok"})

    @router.get("/ready", summary="Readiness: every configured model is verified and loaded")
    async def ready() -> Response:
        return report(registry.ready)

    @router.get("/startup", summary="Start-up: the first load of every model has succeeded")
    async def startup() -> Response:
        return report(registry.started and registry.ready)

    return router


def storage_report(registry: ModelRegistry) -> dict[str, Any]:
    """Degraded storage is reported, never a reason to be un-ready: a loaded model stays good without its store."""
    stores = []
    for state in registry.states:
        if not isinstance(state.source, BundleSource):
            continue
        served = state.served
        stores.append(
            {
                "model": state.key,
                "store": state.source.store_url,
                "ref": state.ref,
                "status": "degraded" if state.storage_error else "ok",
                "error": state.storage_error,
                "since": state.storage_since.isoformat() if state.storage_since else None,
                "last_ok": state.storage_checked.isoformat() if state.storage_checked else None,
                "served_from": served.origin if served is not None else None,
            }
        )
    return {"status": "degraded" if registry.storage_degraded else "ok", "stores": stores}
