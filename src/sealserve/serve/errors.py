"""One JSON error shape for every failure: {"error": {"code", "message", "details"?}}; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from sealserve.errors import SealserveError
from sealserve.model import MLModelException, MLModelSchemaValidationException
from sealserve.serve.registry import ModelNotReadyError, UnknownModelError

logger = logging.getLogger("sealserve.errors")


class RequestError(Exception):
    """A client error with a precise status and a message safe to return."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return Response(orjson.dumps({"error": body}), status_code=status, media_type="application/json", headers=headers)


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Field paths and messages only: pydantic's `input` and `ctx` may echo request data or internals."""
    return [{"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]} for error in exc.errors(include_url=False)]


def install_error_handlers(app: FastAPI) -> None:
    async def on_request_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError)
        return error_response(422, "validation_error", "request body does not match the model's input schema", validation_details(exc))

    async def on_request_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = [{"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
        return error_response(422, "validation_error", "request does not match the endpoint's schema", details)

    async def on_unknown_model(request: Request, exc: Exception) -> Response:
        return error_response(404, "model_not_found", str(exc))

    async def on_not_ready(request: Request, exc: Exception) -> Response:
        return error_response(503, "model_not_ready", str(exc), headers={"Retry-After": "5"})

    async def on_schema_exception(request: Request, exc: Exception) -> Response:
        return error_response(422, "validation_error", str(exc) or "input rejected by the model")

    async def on_model_exception(request: Request, exc: Exception) -> Response:
        logger.warning("model raised %s on %s", type(exc).__name__, request.url.path)
        return error_response(500, "model_error", "the model could not make a prediction")

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error")

    app.add_exception_handler(RequestError, on_request_error)
    app.add_exception_handler(ValidationError, on_validation_error)
    app.add_exception_handler(RequestValidationError, on_request_validation_error)
    app.add_exception_handler(UnknownModelError, on_unknown_model)
    app.add_exception_handler(ModelNotReadyError, on_not_ready)
    app.add_exception_handler(MLModelSchemaValidationException, on_schema_exception)
    app.add_exception_handler(MLModelException, on_model_exception)
    app.add_exception_handler(SealserveError, on_unexpected)
    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
