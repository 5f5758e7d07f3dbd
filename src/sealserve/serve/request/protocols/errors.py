"""Error rendering for failures outside a route's own handling: the native shape {"error": {"code", "message", "details"?}},
or the owning protocol's shape under its paths; never a traceback."""

from __future__ import annotations

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


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return Response(orjson.dumps({"error": body}), status_code=status, media_type="application/json", headers=headers)


def render_error(exc: Exception) -> Response:
    error = serving_error_of(exc)
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def install_error_handlers(app: FastAPI) -> None:
    from sealserve.serve.request.protocols import render_for_path  # the protocols import this module

    async def render(request: Request, exc: Exception) -> Response:
        # Protocol routes render their own failures; what reaches here under a protocol's path is the router's 404 or
        # 405 (a name holding a slash, another method), answered in that protocol's shape as its contract says.
        return render_for_path(request.url.path, serving_error_of(exc))

    for kind in (ServingError, ValidationError, RequestValidationError, HTTPException, MLModelException, SealserveError, Exception):
        app.add_exception_handler(kind, render)
