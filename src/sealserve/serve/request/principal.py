"""Who a request comes from and what their scopes allow: set by authentication, read by adapters and the data plane."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address
from typing import Literal

from starlette.authentication import BaseUser
from starlette.requests import Request

from sealserve.serve.errors import ServingError

READ, ADMIN, PREDICT, EXPLAIN = "read", "admin", "predict", "explain"


@dataclass(frozen=True, eq=False)
class Principal(BaseUser):
    """An authenticated caller: an API key (by its configured name) or a token's subject, with its scopes."""

    subject: str
    kind: Literal["api_key", "token"]
    scopes: frozenset[str]

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.subject

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.subject}"

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def may_predict(self, model: str, action: str = PREDICT) -> bool:
        """`action`: predict, or explain when explanations need their own scope (`explain.scope`)."""
        return action in self.scopes or f"{action}:{model}" in self.scopes

    def may_predict_some_model(self, action: str = PREDICT) -> bool:
        return any(scope == action or scope.startswith(f"{action}:") for scope in self.scopes)


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller, when auth is on and credentials were sent (what the data plane authorizes)."""
    user = request.scope.get("user")
    return user if isinstance(user, Principal) else None


def require_admin(request: Request, what: str) -> None:
    """Admin operations: with auth on, the scope gate has already required the admin scope; without auth, only a
    loopback client may call them."""
    principal = principal_of(request)
    if principal is not None and principal.may(ADMIN):
        return
    host = request.client.host if request.client else ""
    try:
        loopback = ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ServingError(403, "forbidden", f"{what} answers loopback clients only (or callers with the admin scope when auth is on)")
