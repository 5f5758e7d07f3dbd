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

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.actions import AdminActions
from sealserve.serve.lifecycle.outcome import Action
from sealserve.serve.request import paths
from sealserve.serve.request.principal import require_admin
from sealserve.serve.request.protocols.health import storage_report
from sealserve.serve.request.responses import describe_state, json_response


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str


def build_router(actions: AdminActions) -> APIRouter:
    router = APIRouter(prefix=paths.ADMIN, tags=["admin"])
    registry = actions.registry

    async def apply(request: Request, action: Action, name: str, version: str | None = None) -> Response:
        require_admin(request, "the admin API")
        applied = await actions.apply(action, name, version)
        body: dict[str, Any] = {"model": describe_state(applied.state), "storage": storage_report(registry)}
        outcome = applied.outcome
        if outcome is not None:
            problems = outcome.problems()
            if problems:
                code = "pin_failed" if action == "pin" else "not_applied"
                raise ServingError(outcome.status(409), code, outcome.message(problems), details=outcome.reports())
            body["workers"] = outcome.reports()
        return json_response(body)

    @router.post("/models/{name}/reload", summary="Load the model's ref now (verify, load, swap)")
    async def reload(name: str, request: Request) -> Response:
        return await apply(request, "reload", name)

    @router.put("/models/{name}/pin", summary="Serve exactly this version (may be older: an explicit pin)")
    async def pin(name: str, body: PinRequest, request: Request) -> Response:
        return await apply(request, "pin", name, body.version)

    @router.delete("/models/{name}/pin", summary="Follow the configured ref again")
    async def unpin(name: str, request: Request) -> Response:
        return await apply(request, "unpin", name)

    return router
