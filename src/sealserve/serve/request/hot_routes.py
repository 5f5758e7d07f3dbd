"""The inference routes, matched before FastAPI's router: its per-route matching and dependency solving cost more
than a small model's prediction. FastAPI keeps every other route and the documentation of these.

`HotRoutes` is one middleware in the app's stack, so middleware added after it (authentication, metrics, request
ids) wraps the inference routes like every other route.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sealserve.serve.request.dataplane import DataPlane
from sealserve.serve.request.paths import Protocol

Endpoint = Callable[[Request], Awaitable[Response]]
Render = Callable[[Exception], Response]
Refused = Callable[[Request, Exception, float], None]


class HotRoute(Route):
    """An inference route: it knows its protocol, how that protocol renders an error, and whom to tell of a refusal
    (middleware in front of it, such as authentication, answers in the same shape and is counted the same way)."""

    def __init__(
        self, path: str, endpoint: Endpoint, protocol: Protocol, render: Render, refused: Refused, *, explains: bool = False
    ) -> None:
        self.protocol, self.render, self.refused, self.explains = protocol, render, refused, explains

        async def guarded(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return await endpoint(request)
            except Exception as exc:
                refused(request, exc, started)
                return render(exc)

        super().__init__(path, guarded, methods=["POST"], include_in_schema=False)


def hot_route(
    path: str, endpoint: Endpoint, render: Render, dataplane: DataPlane, protocol: Protocol, *, explains: bool = False
) -> HotRoute:
    """A POST route whose failures are answered in its protocol's error shape (there is no exception handler here);
    the data plane's hooks see each failure it has not seen itself. `explains`: an explanation route (its scope)."""
    return HotRoute(path, endpoint, protocol, render, refusals(dataplane, protocol), explains=explains)


def refusals(dataplane: DataPlane, protocol: Protocol) -> Refused:
    """Failures before the data plane (unreadable body, malformed envelope) reach its hooks too."""
    return lambda request, exc, started: dataplane.refused(protocol, request.path_params.get("name", ""), exc, started)


class HotRoutes:
    """ASGI middleware: a request that fully matches one of `routes` goes straight to it; anything else (another
    path, or another method on these paths, answered 405 by FastAPI) goes on to the app."""

    def __init__(self, app: ASGIApp, routes: Sequence[HotRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:  # the endpoint answers every failure itself (HotRoute), so no wrapping is needed
                    scope["route"] = route  # as Starlette's router does: the route template (a trace's http.route)
                    scope.update(child)
                    response = await route.endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
