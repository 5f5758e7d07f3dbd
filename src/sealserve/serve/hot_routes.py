"""The inference routes, matched before FastAPI's router: its per-route matching and dependency solving cost more
than a small model's prediction. FastAPI keeps every other route and the documentation of these.

`HotRoutes` is one middleware in the app's stack, so middleware added after it (authentication, metrics, request
ids) wraps the inference routes like every other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Render = Callable[[Exception], Response]


def hot_route(path: str, endpoint: Endpoint, render: Render) -> Route:
    """A POST route whose failures are answered in its protocol's error shape (there is no exception handler here)."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            return render(exc)

    return Route(path, guarded, methods=["POST"], include_in_schema=False)


class HotRoutes:
    """ASGI middleware: a request that fully matches one of `routes` goes straight to it; anything else (another
    path, or another method on these paths, answered 405 by FastAPI) goes on to the app."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route]) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:  # the endpoint answers every failure itself (hot_route), so no wrapping is needed
                    scope.update(child)
                    response = await route.endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
