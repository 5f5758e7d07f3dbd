"""REST plumbing shared by the protocol routers: routes whose failures render in their protocol's shape, bounded body reads."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ProtocolError, protocol_error_of
from sealserve.serve.request.dataplane import DataPlane
from sealserve.serve.request.hot_routes import Endpoint, HotRoute, hot_route
from sealserve.serve.request.http_body import read_json_body
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.protocols.errors import Render

Envelope = TypeVar("Envelope", bound=BaseModel)


def guarded_route(render: Render) -> type[APIRoute]:
    """A route class whose endpoint errors (any exception) are answered in the protocol's own error shape."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    return render(protocol_error_of(exc))

            return guarded

    return GuardedRoute


def hot_protocol_route(path: str, endpoint: Endpoint, render: Render, dataplane: DataPlane, protocol: Protocol) -> HotRoute:
    """An inference route for `HotRoutes`, its failures rendered like the protocol's other routes."""
    return hot_route(path, endpoint, lambda exc: render(protocol_error_of(exc)), dataplane, protocol)


async def read_body(request: Request, limits: RequestLimits, *, binary: bool = False) -> bytes:
    """The raw body under the service's byte limit; JSON content types only unless `binary` (V2 binary data)."""
    return await read_json_body(request, limits, json_only=not binary)


def parse_json(model: type[Envelope], body: bytes, what: str) -> Envelope:
    """A protocol's request envelope from the body bytes; every failure is a 400 naming the field.

    orjson parses large tensors about twice as fast as pydantic's own parser; anything it declines (NaN tokens,
    integers past 64 bits) and every invalid envelope go through pydantic's JSON mode, whose messages clients see."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        try:
            return model.model_validate(parsed)
        except ValidationError:
            pass
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise ProtocolError(400, "request body is not valid JSON") from None
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in errors[:5])
        raise ProtocolError(400, f"invalid {what}: {problems}") from None
