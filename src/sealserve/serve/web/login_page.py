"""Logging in from a browser: a form posted to the same checks as the token endpoint, the token kept in the session
cookie (serve/auth/session.py); and what a browser sees instead of a JSON 401 when a page needs credentials."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from sealserve.serve.auth.http import RenderForPath
from sealserve.serve.auth.login import Login, read_credentials
from sealserve.serve.auth.session import COOKIE, LOGIN_PATH, LOGOUT_PATH, is_page
from sealserve.serve.errors import ServingError
from sealserve.serve.web.ui import PAGE_POLICY, SECURITY_HEADERS

HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
CROSS_SITE = ServingError(403, "forbidden", "a login or logout form must come from this service's own pages")


class LoginPages:
    """`GET/POST /ui/login` and `POST /ui/logout`, where `auth.users` is configured."""

    def __init__(self, login: Login, templates: Jinja2Templates) -> None:
        self.login, self.templates = login, templates

    def routes(self) -> list[BaseRoute]:
        return [
            Route(LOGIN_PATH, self.form, methods=["GET"], include_in_schema=False),
            Route(LOGIN_PATH, self.submit, methods=["POST"], include_in_schema=False),
            Route(LOGOUT_PATH, self.logout, methods=["POST"], include_in_schema=False),
        ]

    async def form(self, request: Request) -> Response:
        return self._form(request, None, 200)

    async def submit(self, request: Request) -> Response:
        if not same_origin(request):
            return self._form(request, CROSS_SITE.message, CROSS_SITE.status)
        try:
            username, password, _, _ = await read_credentials(request)
            client = request.client.host if request.client else "unknown"
            answer = await self.login.token(username, password, client, None, basic=False)
        except ServingError as failure:
            response = self._form(request, failure.message, failure.status)
            if "Retry-After" in (failure.headers or {}):
                response.headers["Retry-After"] = (failure.headers or {})["Retry-After"]
            return response
        response = RedirectResponse(local_page(request.query_params.get("next")), status_code=303, headers=HEADERS)
        response.set_cookie(
            COOKIE,
            answer["access_token"],
            max_age=int(answer["expires_in"]),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request) -> Response:
        if not same_origin(request):
            return self._form(request, CROSS_SITE.message, CROSS_SITE.status)
        response = RedirectResponse(LOGIN_PATH, status_code=303, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict")
        return response

    def _form(self, request: Request, message: str | None, status: int) -> Response:
        target = f"{LOGIN_PATH}?next={quote(local_page(request.query_params.get('next')), safe='/')}"
        context = {"message": message, "action": target, "signed_in": False}
        response: Response = self.templates.TemplateResponse(request, "login.html", context, status_code=status)
        response.headers.update({**HEADERS, "Content-Security-Policy": PAGE_POLICY})
        return response


def same_origin(request: Request) -> bool:
    """A browser says where a form came from (Sec-Fetch-Site, else Origin; these pages send no referrer, so Origin
    may be "null"); a form from another site or origin is refused. Clients that send neither are not browsers."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def local_page(wanted: str | None) -> str:
    """Where to go after logging in: one of this service's pages, never another site (an open redirect)."""
    if not wanted or not wanted.startswith("/") or wanted.startswith("//") or "\\" in wanted:
        return "/"
    parts = urlsplit(wanted)
    return wanted if not parts.scheme and not parts.netloc and is_page(parts.path) and parts.path != LOGIN_PATH else "/"


def pages_for_browsers(render: RenderForPath, login: bool) -> RenderForPath:
    """Missing or expired credentials on a page: the login form (with the page to return to), or, where nobody logs
    in with a password, a page saying how to send credentials. Every other answer is the API's own."""

    def render_page(path: str, failure: ServingError) -> Response:
        if failure.status != 401 or not is_page(path):
            return render(path, failure)
        if login:
            response: Response = RedirectResponse(f"{LOGIN_PATH}?next={quote(path, safe='/')}", status_code=303, headers=HEADERS)
        else:
            response = HTMLResponse(NO_LOGIN, status_code=401, headers={**HEADERS, **(failure.headers or {})})
            response.headers["Content-Security-Policy"] = PAGE_POLICY
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return render_page


NO_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sealserve: credentials needed</title>
<link rel="stylesheet" href="/ui/static/sealserve.css"></head>
<body><main><h1>Credentials needed</h1>
<p>This service accepts API keys or bearer tokens, and has no password login. To read these pages in a browser,
open them through a proxy that adds <code>Authorization: Bearer &lt;token or API key&gt;</code> to each request,
or ask for a user account (<code>auth.users</code> in the service configuration) to log in here.</p>
</main></body></html>
"""
