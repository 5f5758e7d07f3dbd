"""The one place errors are rendered: each protocol family's error body, chosen by the path table for failures
that reach no route's own handling (the router's 404/405, authentication). Never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from sealserve.errors import SealserveError
from sealserve.model import MLModelException
from sealserve.serve.errors import ServingError, serving_error_of
from sealserve.serve.request.paths import Protocol, protocol_of_path

Render = Callable[[ServingError], Response]


def native_error(failure: ServingError) -> Response:
    """sealserve's own API: {"error": {"code", "message", "details"?}}."""
    body: dict[str, Any] = {"code": failure.code, "message": failure.message}
    if failure.details:
        body["details"] = failure.details
    return _json(failure, {"error": body})


def kserve_error(failure: ServingError) -> Response:
    """KServe V1 and the Open Inference Protocol (V2): {"error": "<message>"}."""
    return _json(failure, {"error": failure.message})


SELDON_REASONS = {404: "MODEL_NOT_FOUND", 503: "MODEL_NOT_READY", 500: "MICROSERVICE_INTERNAL_ERROR"}


def seldon_error(failure: ServingError) -> Response:
    """Seldon's {"status": {"code", "info", "reason", "status": "FAILURE"}}."""
    reason = SELDON_REASONS.get(failure.status, "MICROSERVICE_BAD_DATA")
    return _json(failure, {"status": {"code": failure.status, "info": failure.message, "reason": reason, "status": "FAILURE"}})


RENDERERS: dict[Protocol | None, Render] = {
    None: native_error,
    Protocol.NATIVE: native_error,
    Protocol.KSERVE_V1: kserve_error,
    Protocol.V2_REST: kserve_error,
    Protocol.SELDON: seldon_error,
}


def render_error(exc: BaseException) -> Response:
    """Any exception in the native shape."""
    return native_error(serving_error_of(exc))


def render_for_path(path: str, failure: ServingError) -> Response:
    """A failure answered before any route ran, in the error shape of the API the path belongs to."""
    return RENDERERS[protocol_of_path(path)](failure)


def install_error_handlers(app: FastAPI) -> None:
    async def render(request: Request, exc: Exception) -> Response:
        # Protocol routes render their own failures; what reaches here under a protocol's path is the router's 404 or
        # 405 (a name holding a slash, another method), answered in that protocol's shape as its contract says.
        return render_for_path(request.url.path, serving_error_of(exc))

    for kind in (ServingError, ValidationError, RequestValidationError, HTTPException, MLModelException, SealserveError, Exception):
        app.add_exception_handler(kind, render)


def _json(failure: ServingError, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=failure.status, media_type="application/json", headers=failure.headers)
