"""The one error vocabulary of serving: every failure a request can meet carries its status; protocols only render it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from sealserve.model import MLModelException, MLModelSchemaValidationException

logger = logging.getLogger("sealserve.errors")

CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 413: "too_large", 422: "validation_error"}
GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class ServingError(Exception):
    """A failure with a precise status and a message safe to return; `details` are per-field problems."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers
        self.observed = False  # set once the data plane's hooks have seen this failure

    @property
    def grpc_code(self) -> grpc.StatusCode:
        """The gRPC status code of this failure (what `status` is to HTTP); server faults are INTERNAL."""
        return GRPC_CODES.get(self.status, grpc.StatusCode.INTERNAL)


class ProtocolError(ServingError):
    """A client error stated by its status alone (the standard protocols carry no error codes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, CODES.get(status, "bad_request"), message)


class UnknownModelError(ServingError):
    """No configured model has this name."""

    def __init__(self, message: str) -> None:
        super().__init__(404, "model_not_found", message)


class ModelNotReadyError(ServingError):
    """The model is configured but has no verified, loaded version yet."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "model_not_ready", message, headers={"Retry-After": "5"})


class OverloadedError(ServingError):
    """The model's queue is full; the client should retry shortly."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "overloaded", message, headers={"Retry-After": "1"})


MAX_DETAILS = 50
MAX_ECHOED = 100


def shown(text: str) -> str:
    """A client-chosen name as an error message may quote it: repr'd and cut at MAX_ECHOED characters."""
    return repr(text) if len(text) <= MAX_ECHOED else f"{text[:MAX_ECHOED]!r}… ({len(text)} characters)"


def shown_all(texts: Sequence[str], most: int = 5) -> str:
    listed = ", ".join(shown(text) for text in texts[:most])
    return listed if len(texts) <= most else f"{listed} and {len(texts) - most} more"


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Field paths and messages only (pydantic's `input` and `ctx` may echo request data or internals), at most
    MAX_DETAILS of them: a large batch of bad records gets a bounded answer."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    details: list[dict[str, Any]] = [
        {"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]} for error in errors[:MAX_DETAILS]
    ]
    if len(errors) > MAX_DETAILS:
        details.append({"loc": [], "message": f"and {len(errors) - MAX_DETAILS} more problems", "type": "truncated"})
    return details


def serving_error_of(exc: BaseException) -> ServingError:
    """Any exception as the error a client sees; only a model or server fault is a 500, and it is logged, never echoed."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, ValidationError):
        return ServingError(422, "validation_error", "request body does not match the model's input schema", validation_details(exc))
    if isinstance(exc, RequestValidationError):
        details = [{"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
        return ServingError(422, "validation_error", "request does not match the endpoint's schema", details)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ServingError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None)
    if isinstance(exc, MLModelSchemaValidationException):
        return ServingError(422, "validation_error", str(exc) or "input rejected by the model")
    if isinstance(exc, MLModelException):
        logger.warning("model raised %s", type(exc).__name__)
        return ServingError(500, "model_error", "the model could not make a prediction")
    logger.error("unexpected error while serving a request", exc_info=exc)
    return ServingError(500, "internal_error", "internal error")


def protocol_error_of(exc: BaseException) -> ServingError:
    """The error as the standard protocols report it: they have no 422, so a schema violation is a 400."""
    error = serving_error_of(exc)
    if error.status != 422:
        return error
    return ProtocolError(400, "the request does not match the endpoint" if isinstance(exc, RequestValidationError) else error.message)
