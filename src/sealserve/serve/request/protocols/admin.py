"""Admin endpoints for `sealserve admin`: reload a model now, pin or unpin a version.

Mounted only with `admin: {enabled: true}` in the service config. With auth on they need the admin scope
(the scope gate, auth/http.py); without auth they answer loopback clients only (run the CLI on the same host,
or through `kubectl exec` / port-forward) and everyone else gets 403.

With `serve --workers N` every worker process applies each action (fanout.py) and the answer, with one
entry per worker under `workers`, is 200 only when all of them did: a pin serves the pinned version on
every worker, unpin and reload leave every worker serving one same version. Otherwise the answer is an
error naming each worker that failed and why (409; 504 when a worker did not answer in time).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from sealserve.errors import SealserveError
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.fanout import Action, Outcome, WorkerSync
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState
from sealserve.serve.request.http_body import require_loopback
from sealserve.serve.request.protocols.health import storage_report
from sealserve.serve.request.responses import describe_state, json_response


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str


def build_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["admin"])

    def local_only(request: Request) -> None:
        require_loopback(request, "the admin API")

    def summary(state: ModelState, outcome: Outcome | None = None) -> Response:
        body: dict[str, Any] = {"model": describe_state(state), "storage": storage_report(registry)}
        if outcome is not None:
            body["workers"] = outcome.reports()
        return json_response(body)

    async def everywhere(request: Request, action: Action, name: str, version: str | None = None) -> Response | None:
        """With several workers: apply on all of them and answer; None with one worker (the caller acts directly)."""
        fanout: WorkerSync | None = getattr(request.app.state, "fanout", None)
        if fanout is None:
            return None
        try:
            outcome = await fanout.apply(action, name, version)
        except ServingError:
            raise
        except SealserveError as exc:
            raise ServingError(409, f"{action}_failed", str(exc)) from None
        problems = outcome.problems()
        if problems:
            code = "pin_failed" if action == "pin" else "not_applied"
            raise ServingError(outcome.status(409), code, outcome.message(problems), details=outcome.reports())
        return summary(registry.state(name), outcome)

    @router.post("/models/{name}/reload", summary="Load the model's ref now (verify, load, swap)")
    async def reload(name: str, request: Request) -> Response:
        local_only(request)
        registry.state(name)
        answer = await everywhere(request, "reload", name)
        return answer or summary(await asyncio.to_thread(registry.reload, name))

    @router.put("/models/{name}/pin", summary="Serve exactly this version (may be older: an explicit pin)")
    async def pin(name: str, body: PinRequest, request: Request) -> Response:
        local_only(request)
        registry.state(name)
        answer = await everywhere(request, "pin", name, body.version)
        if answer is not None:
            return answer
        try:
            state = await asyncio.to_thread(registry.pin, name, body.version)
        except SealserveError as exc:
            raise ServingError(409, "pin_failed", str(exc)) from None
        return summary(state)

    @router.delete("/models/{name}/pin", summary="Follow the configured ref again")
    async def unpin(name: str, request: Request) -> Response:
        local_only(request)
        registry.state(name)
        answer = await everywhere(request, "unpin", name)
        return answer or summary(await asyncio.to_thread(registry.unpin, name))

    return router
