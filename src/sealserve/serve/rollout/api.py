"""The rollout over HTTP: GET /api/models/{name}/candidate (the comparison, `read`), and with the admin API on,
PUT and DELETE /api/admin/models/{name}/candidate (set, abort) and POST …/candidate/promote (`admin`, or a loopback
client without auth)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.outcome import Action
from sealserve.serve.model_options import Candidate
from sealserve.serve.request import paths
from sealserve.serve.request.principal import principal_of, require_admin
from sealserve.serve.request.responses import json_response
from sealserve.serve.rollout.candidates import Rollout
from sealserve.serve.rollout.comparison import summarize


class AbortRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="aborted by an admin", min_length=1, max_length=500)


def describe(rollout: Rollout, name: str) -> dict[str, Any]:
    """What GET …/candidate answers: production, the candidate and its comparison, and how earlier candidates ended."""
    state = rollout.registry.state(name)
    trial = rollout.trials.get(state.key)
    production = state.served
    view: dict[str, Any] = {
        "model": state.name,
        "production": {"version": production.version if production else None, "ref": state.ref},
        "candidate": trial.describe() if trial is not None else None,
        "comparison": summarize(rollout.exports(state.key)) if trial is not None else None,
        "ended": [ended.as_dict() for ended in rollout.ended.get(state.key, ())],
    }
    return view


def build_router(rollout: Rollout, admin: bool) -> APIRouter:
    router = APIRouter(tags=["rollout"])

    @router.get(paths.NATIVE_MODELS + "/{name}/candidate", summary="The model's candidate and its comparison with production")
    async def get_candidate(name: str) -> Response:
        return json_response(await asyncio.to_thread(describe, rollout, name))

    if not admin:
        return router

    def caller(request: Request) -> str:
        principal = principal_of(request)
        return principal.identity if principal is not None else "admin"

    async def everywhere(action: Action, name: str, extra: dict[str, Any]) -> list[dict[str, Any]] | None:
        """With several workers, every worker applies it (fanout.py) and the answer waits for all of them."""
        sync = rollout.sync
        if sync is None:
            return None
        outcome = await sync.apply(action, name, None, extra)
        problems = outcome.problems()
        if problems:
            code = "candidate_failed" if action == "candidate" else "not_applied"
            raise ServingError(outcome.status(409), code, outcome.message(problems), details=outcome.reports())
        return outcome.reports()

    @router.put(paths.ADMIN + "/models/{name}/candidate", summary="Load a candidate version for shadow or canary")
    async def set_candidate(name: str, body: Candidate, request: Request) -> Response:
        require_admin(request, "the admin API")
        rollout.registry.state(name)  # an unknown model is a 404 before anything is written
        await rollout.sweep()
        workers = await everywhere("candidate", name, {"candidate": body.model_dump(mode="json"), "by": caller(request)})
        if workers is None:
            await asyncio.to_thread(rollout.set, name, body, caller(request))
        return json_response(await asyncio.to_thread(describe, rollout, name) | ({"workers": workers} if workers else {}))

    @router.post(paths.ADMIN + "/models/{name}/candidate/promote", summary="Move the model's alias to its candidate and reload")
    async def promote_candidate(name: str, request: Request) -> Response:
        require_admin(request, "the admin API")
        alias, version = await asyncio.to_thread(rollout.promote, name)
        workers = await everywhere("reload", name, {})
        if workers is None:
            await asyncio.to_thread(rollout.registry.reload, name)
        await rollout.sweep()
        answer = {"promoted": {"alias": alias, "version": version}} | ({"workers": workers} if workers else {})
        return json_response(await asyncio.to_thread(describe, rollout, name) | answer)

    @router.delete(paths.ADMIN + "/models/{name}/candidate", summary="Abort the model's candidate, saying why")
    async def abort_candidate(name: str, request: Request, body: AbortRequest | None = None) -> Response:
        require_admin(request, "the admin API")
        key, reason = rollout.registry.state(name).key, (body or AbortRequest()).reason
        if key not in rollout.trials:
            raise ServingError(404, "no_candidate", f"model {name} has no candidate")
        workers = await everywhere("abort", name, {"candidate": None, "reason": reason, "by": caller(request)})
        if workers is None:
            await asyncio.to_thread(rollout.abort, name, reason, caller(request))
        elif rollout.metrics is not None:
            rollout.metrics.aborted(key, "admin")  # once, here: every worker applied it without counting
        await rollout.sweep()
        return json_response(await asyncio.to_thread(describe, rollout, name) | ({"workers": workers} if workers else {}))

    return router
