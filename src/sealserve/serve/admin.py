"""Admin endpoints for `sealserve admin`: reload a model now, pin or unpin a version.

Mounted only with `admin: {enabled: true}` in the service config. sealserve has no authentication
yet, so these endpoints answer loopback clients only (run the CLI on the same host, or through
`kubectl exec` / port-forward); everyone else gets 403. They move to the admin scope once auth exists.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from sealserve.errors import SealserveError
from sealserve.serve.body import require_loopback
from sealserve.serve.errors import RequestError
from sealserve.serve.health import storage_report
from sealserve.serve.registry import ModelRegistry, ModelState
from sealserve.serve.responses import describe_state, json_response


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str


def build_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["admin"])

    def local_only(request: Request) -> None:
        require_loopback(request, "the admin API")

    def summary(state: ModelState) -> Response:
        return json_response({"model": describe_state(state), "storage": storage_report(registry)})

    @router.post("/models/{name}/reload", summary="Load the model's ref now (verify, load, swap)")
    async def reload(name: str, request: Request) -> Response:
        local_only(request)
        registry.state(name)
        return summary(await asyncio.to_thread(registry.reload, name))

    @router.put("/models/{name}/pin", summary="Serve exactly this version (may be older: an explicit pin)")
    async def pin(name: str, body: PinRequest, request: Request) -> Response:
        local_only(request)
        registry.state(name)
        try:
            state = await asyncio.to_thread(registry.pin, name, body.version)
        except SealserveError as exc:
            raise RequestError(409, "pin_failed", str(exc)) from None
        return summary(state)

    @router.delete("/models/{name}/pin", summary="Follow the configured ref again")
    async def unpin(name: str, request: Request) -> Response:
        local_only(request)
        registry.state(name)
        return summary(await asyncio.to_thread(registry.unpin, name))

    return router
