"""The web pages' session: the token endpoint's JWT kept in an HttpOnly, SameSite=Strict cookie.

The cookie authenticates reading pages only (GET or HEAD of `/`, `/ui/…`, `/docs` and the schema the docs page
fetches), never an API call: a form another site posts to `/api`, `/v1`, `/v2` or an admin route carries no
credential the server accepts, so the cookie cannot be used for cross-site requests.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from starlette.types import Scope

COOKIE = "sealserve_session"
LOGIN_PATH = "/ui/login"
LOGOUT_PATH = "/ui/logout"
READING_METHODS = ("GET", "HEAD")
SCHEMA_PATH = "/openapi.json"


def is_page(path: str) -> bool:
    """A page a browser opens (the answer is HTML): the overview, the model pages and the API docs."""
    return path == "/" or path.startswith(("/ui/", "/docs"))


def session_credential(scope: Scope) -> str | None:
    """The session token of a reading request to a page (or the docs' schema); None for anything else."""
    if scope.get("method") not in READING_METHODS or not (is_page(scope["path"]) or scope["path"] == SCHEMA_PATH):
        return None
    header = next((value for name, value in scope.get("headers", ()) if name == b"cookie"), None)
    if header is None:
        return None
    try:
        cookies = SimpleCookie(header.decode("latin-1"))
    except CookieError:
        return None
    morsel = cookies.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value.count(".") == 2 else None  # a JWT, never an API key
