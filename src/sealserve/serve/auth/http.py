"""Authentication for HTTP: Starlette's AuthenticationMiddleware with our backend, then one scope gate for every path.

The gate decides from the path alone what a request needs: nothing (probes, static assets, the token endpoint, and
the docs and metrics when `auth.public` says so), `admin` (admin and repository APIs), some `predict` scope (the
inference routes; which model is checked by the data plane) or `read` (everything else, unknown paths included).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from sealserve.serve.auth.credentials import Authenticator, log_failure
from sealserve.serve.auth.login import TOKEN_PATH
from sealserve.serve.auth.principal import AuthenticationFailed, Forbidden, MissingCredentials
from sealserve.serve.auth.session import LOGIN_PATH, LOGOUT_PATH, session_credential
from sealserve.serve.errors import ServingError
from sealserve.serve.request.hot_routes import HotRoute
from sealserve.serve.request.paths import is_admin, is_probe
from sealserve.serve.request.principal import ADMIN, EXPLAIN, PREDICT, READ, Principal

RenderForPath = Callable[[str, ServingError], Response]
OPEN = ""
OPEN_ASSETS = ("/ui/static/", "/docs/assets/")
PUBLIC_PATHS = {"docs": ("/docs", "/docs/oauth2-redirect", "/openapi.json"), "metrics": ("/metrics",)}
REMEMBERED_PATHS = 4096


class CredentialsBackend(AuthenticationBackend):
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Principal] | None:
        headers = conn.headers
        authorization, api_key = headers.get("authorization"), headers.get("x-api-key")
        if authorization is None and api_key is None:
            session = session_credential(conn.scope)
            authorization = f"Bearer {session}" if session is not None else None
        try:
            if self.authenticator.may_fetch(authorization):  # an identity provider's JWKS may be downloaded: not on the loop
                principal = await asyncio.to_thread(self.authenticator.authenticate, authorization, api_key)
            else:
                principal = self.authenticator.authenticate(authorization, api_key)
        except AuthenticationFailed as failure:
            log_failure(failure, "http", conn.client.host if conn.client else None)
            raise AuthenticationError(failure) from None
        if principal is None:
            return None
        return AuthCredentials(sorted(principal.scopes)), principal


class AccessPolicy:
    """What each request needs, from its path (and, for inference routes, its method): the one table of it."""

    def __init__(self, inference: Sequence[HotRoute], public: Sequence[str], *, explain_scope: bool = False) -> None:
        """`explain_scope`: explanation routes need `explain` (or `explain:<model>`) rather than a predict scope."""
        self.inference, self.explain_scope = tuple(inference), explain_scope
        self.suffixes = tuple({route.path.rsplit("}", 1)[-1] for route in inference})  # a cheap test before matching routes
        self.public = frozenset(path for name in public for path in PUBLIC_PATHS[name])
        self._known: dict[tuple[str, str], tuple[str, HotRoute | None]] = {}

    def requirement(self, scope: Scope) -> tuple[str, HotRoute | None]:
        key = (scope["method"], scope["path"])
        known = self._known.get(key)
        if known is None:
            known = self._requirement(scope)
            if len(self._known) < REMEMBERED_PATHS:  # client-chosen paths: remember a bounded number
                self._known[key] = known
        return known

    def _requirement(self, scope: Scope) -> tuple[str, HotRoute | None]:
        path: str = scope["path"]
        if path in (TOKEN_PATH, LOGIN_PATH, LOGOUT_PATH) or path in self.public or is_probe(path) or path.startswith(OPEN_ASSETS):
            return OPEN, None
        if is_admin(path):
            return ADMIN, None
        if scope["method"] == "POST" and path.endswith(self.suffixes):
            for route in self.inference:
                if route.matches(scope)[0] is Match.FULL:
                    return (EXPLAIN if route.explains and self.explain_scope else PREDICT), route
        return READ, None


class ScopeGate:
    """ASGI middleware after AuthenticationMiddleware: 401 without a principal, 403 without the path's scope.
    A refused inference request is answered in its protocol's shape and reaches the data plane's hooks (metrics)."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy, render: RenderForPath) -> None:
        self.app, self.policy, self.render = app, policy, render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed, route = self.policy.requirement(scope)
        if needed is OPEN:
            await self.app(scope, receive, send)
            return
        principal = scope.get("user")
        failure: ServingError | None = None
        if not isinstance(principal, Principal):
            failure = MissingCredentials()
        elif needed in (PREDICT, EXPLAIN) and not principal.may_predict_some_model(needed):
            failure = Forbidden(principal, needed, "predictions" if needed == PREDICT else "explanations")
        elif needed in (READ, ADMIN) and not principal.may(needed):
            failure = Forbidden(principal, needed, scope["path"][:100])
        if failure is None:
            await self.app(scope, receive, send)
            return
        await refusal(scope, route, failure, self.render)(scope, receive, send)


def refusal(scope: Scope, route: HotRoute | None, failure: ServingError, render: RenderForPath) -> Response:
    """The answer to a refused request: in its inference protocol's shape, counted by the data plane's hooks."""
    if route is None:
        return render(scope["path"], failure)
    route.refused(Request({**scope, "path_params": route.matches(scope)[1].get("path_params", {})}), failure, time.perf_counter())
    return route.render(failure)


def add_auth_middleware(app: Any, policy: AccessPolicy, authenticator: Authenticator, render: RenderForPath) -> None:
    """Starlette wraps middleware in reverse order of adding: the gate first, so authentication runs before it."""

    def on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
        failure = exc.args[0] if exc.args and isinstance(exc.args[0], ServingError) else MissingCredentials()
        return refusal(conn.scope, policy.requirement(conn.scope)[1], failure, render)

    app.add_middleware(ScopeGate, policy=policy, render=render)
    app.add_middleware(AuthenticationMiddleware, backend=CredentialsBackend(authenticator), on_error=on_error)


SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "A JWT, or an API key, as `Authorization: Bearer <credential>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
SCOPE_DESCRIPTIONS = {
    PREDICT: "Predict with every model (or predict:<model> for one)",
    READ: "Read model metadata",
    ADMIN: "Reload, pin, load, unload",
}


def document_security(schema: dict[str, Any], policy: AccessPolicy, login: bool) -> dict[str, Any]:
    """Declare the schemes (so /docs has a working Authorize button) and each operation's requirement and 401/403."""
    schemes = dict(SCHEMES)
    if login:
        schemes["password"] = {"type": "oauth2", "flows": {"password": {"tokenUrl": TOKEN_PATH, "scopes": SCOPE_DESCRIPTIONS}}}
    schema.setdefault("components", {})["securitySchemes"] = schemes
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            scope = {"type": "http", "path": path.replace("{", "").replace("}", ""), "method": method.upper()}
            needed, _ = policy.requirement(scope)
            if needed is OPEN:
                continue
            scopes = [needed]
            operation["security"] = [{"bearer": []}, {"apiKey": []}] + ([{"password": scopes}] if login else [])
            operation["responses"].setdefault("401", {"description": "Missing or invalid credentials (WWW-Authenticate: Bearer)"})
            operation["responses"].setdefault("403", {"description": f"The credentials lack the {needed!r} scope"})
    return schema
