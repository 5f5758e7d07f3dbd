"""The native API's error shape for every failure: {"error": {"code", "message", "details"?}}; never a traceback."""

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
    async def render(request: Request, exc: Exception) -> Response:
        return render_error(exc)

    for kind in (ServingError, ValidationError, RequestValidationError, HTTPException, MLModelException, SealserveError, Exception):
        app.add_exception_handler(kind, render)
