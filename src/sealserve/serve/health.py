"""Liveness, readiness and start-up probes; readiness means every configured model is verified and loaded."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from sealserve.serve.registry import ModelRegistry
from sealserve.serve.responses import describe_state, json_response


def build_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(prefix="/api/health", tags=["health"])

    def report(ok: bool) -> Response:
        models = [describe_state(state) for state in registry.states]
        return json_response({"status": "ok" if ok else "unavailable", "models": models}, status=200 if ok else 503)

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
