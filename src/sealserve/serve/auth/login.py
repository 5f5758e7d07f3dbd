"""The token endpoint: username and password (HTTP Basic or the OAuth2 password form) in, a short-lived HS256 JWT out.

Passwords are checked against argon2id or bcrypt hashes off the event loop, a few at a time (each argon2id check
holds 64 MiB); failures are counted per username and per client address, and past the limit the answer is 429
before any hash is computed. An unknown username costs the same hash check as a wrong password, and gets the
same answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import bcrypt
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import APIRouter, Request
from starlette.responses import Response

from sealserve.serve.config import Auth, LoginLimit
from sealserve.serve.errors import ServingError
from sealserve.serve.request.responses import json_response

logger = logging.getLogger("sealserve.auth")
TOKEN_PATH = "/api/auth/token"  # noqa: S105 - a path, not a password
MAX_LOGIN_BODY = 4096
MAX_PASSWORD = 1024
MAX_TRACKED = 10_000  # usernames and addresses with recent failures remembered; the oldest are forgotten first
MAX_WAITING = 64  # logins queued for a hash check before new ones get 503
HASHER = PasswordHasher()


class LoginFailed(ServingError):
    def __init__(self, message: str = "wrong username or password", *, basic: bool = False) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="sealserve", charset="UTF-8"'} if basic else None
        super().__init__(401, "invalid_credentials", message, headers=headers)


def hash_password(password: str) -> str:
    """An argon2id hash with argon2-cffi's default (RFC 9106 low-memory) parameters, for `users[].password_hash`."""
    return HASHER.hash(password)


def password_matches(password: str, stored: str) -> bool:
    encoded = password.encode()
    if stored.startswith("$argon2"):
        try:
            return HASHER.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    try:
        return bcrypt.checkpw(encoded, stored.encode())
    except ValueError:  # bcrypt refuses passwords past 72 bytes and malformed hashes
        return False


@dataclass(frozen=True)
class Account:
    password_hash: str
    scopes: frozenset[str]


class FailureCounter:
    """Failures in the last `window` seconds per key, for a bounded number of keys."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until `key` may try again, or None when it is under the limit."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return None
        return failures[0] + self.window - now

    def failed(self, key: str, now: float) -> None:
        failures = self._failures.get(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.limit)
            if len(self._failures) > MAX_TRACKED:
                self._failures.popitem(last=False)
        failures.append(now)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


class TokenIssuer:
    """Signs the tokens the endpoint gives out, with the same secret, issuer and audience `Tokens` checks."""

    def __init__(self, secret: bytes, issuer: str | None, audience: str | None, ttl: int) -> None:
        self.secret, self.issuer, self.audience, self.ttl = secret, issuer, audience, ttl

    def issue(self, subject: str, scopes: frozenset[str]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "iat": now, "nbf": now, "exp": now + self.ttl, "jti": secrets.token_urlsafe(12)}
        claims["scope"] = " ".join(sorted(scopes))
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        return jwt.encode(claims, self.secret, algorithm="HS256")


class Login:
    """Users, their failure counters and the token issuer: what `POST /api/auth/token` needs."""

    def __init__(self, accounts: dict[str, Account], issuer: TokenIssuer, limit: LoginLimit) -> None:
        self.accounts, self.issuer = accounts, issuer
        self.per_user = FailureCounter(limit.per_user, limit.window)
        self.per_client = FailureCounter(limit.per_client, limit.window)
        self._hashing = asyncio.Semaphore(limit.concurrent_hashes)
        self._waiting = 0
        self._decoy = hash_password(secrets.token_urlsafe(16))  # checked for unknown users: same time, same answer

    @classmethod
    def from_config(cls, auth: Auth, secret: bytes) -> Login:
        assert auth.jwt is not None
        accounts = {user.username: Account(user.password_hash.get_secret_value(), frozenset(user.scopes)) for user in auth.users}
        return cls(accounts, TokenIssuer(secret, auth.jwt.issuer, auth.jwt.audience, auth.jwt.token_ttl), auth.login_limit)

    async def token(self, username: str, password: str, client: str, wanted: frozenset[str] | None, *, basic: bool) -> dict[str, Any]:
        now = time.monotonic()
        waits = [wait for wait in (self.per_user.retry_after(username, now), self.per_client.retry_after(client, now)) if wait is not None]
        if waits:
            raise ServingError(
                429, "too_many_failures", "too many failed logins; try again later", headers={"Retry-After": str(math.ceil(max(waits)))}
            )
        account = self.accounts.get(username)
        if self._waiting >= MAX_WAITING:
            raise ServingError(503, "overloaded", "too many logins in progress", headers={"Retry-After": "1"})
        self._waiting += 1
        try:
            async with self._hashing:
                stored = account.password_hash if account is not None else self._decoy
                matches = await asyncio.to_thread(password_matches, password, stored)
        finally:
            self._waiting -= 1
        if account is None or not matches:
            self.per_user.failed(username, time.monotonic())
            self.per_client.failed(client, time.monotonic())
            logger.warning("login failed for %r from %s", username[:128], client)
            raise LoginFailed(basic=basic)
        self.per_user.forget(username)
        scopes = account.scopes if wanted is None else account.scopes & wanted
        if not scopes:
            raise ServingError(400, "invalid_scope", "none of the requested scopes is granted to this user")
        return {
            "access_token": self.issuer.issue(username, scopes),
            "token_type": "bearer",
            "expires_in": self.issuer.ttl,
            "scope": " ".join(sorted(scopes)),
        }


TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A bearer token (RFC 6749 5.1)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in"],
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"type": "string", "enum": ["bearer"]},
                        "expires_in": {"type": "integer"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    },
    400: {"description": "Malformed request, unsupported grant type or scope"},
    401: {"description": "Wrong username or password (the same answer for an unknown user)"},
    429: {"description": "Too many failed logins for this user or client; see Retry-After"},
}
TOKEN_BODY = {
    "required": False,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["grant_type", "username", "password"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["password"]},
                    "username": {"type": "string"},
                    "password": {"type": "string", "format": "password"},
                    "scope": {"type": "string"},
                },
            }
        }
    },
}


def build_router(login: Login) -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.post(
        TOKEN_PATH,
        summary="Log in: HTTP Basic, or the OAuth2 password form, for a bearer token",
        responses=TOKEN_RESPONSES,
        openapi_extra={"requestBody": TOKEN_BODY},
    )
    async def token(request: Request) -> Response:
        username, password, wanted, basic = await read_credentials(request)
        client = request.client.host if request.client else "unknown"
        answer = await login.token(username, password, client, wanted, basic=basic)
        return json_response(answer, headers={"Cache-Control": "no-store"})

    return router


async def read_credentials(request: Request) -> tuple[str, str, frozenset[str] | None, bool]:
    """(username, password, requested scopes, came by Basic) from the Authorization header or the form body."""
    header = request.headers.get("authorization")
    if header is not None and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ServingError(400, "bad_request", "the Basic credentials are not base64 of UTF-8 username:password") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise ServingError(400, "bad_request", "the Basic credentials hold no ':' between username and password")
        return _bounded(username, password, None, basic=True)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise LoginFailed("send a username and password: HTTP Basic, or the OAuth2 password form (grant_type=password)", basic=True)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            raise ServingError(413, "too_large", f"the login form is larger than {MAX_LOGIN_BODY} bytes")
    try:
        form = parse_qs(body.decode(), strict_parsing=bool(body), max_num_fields=8)
    except (ValueError, UnicodeDecodeError):
        raise ServingError(400, "bad_request", "the login form is not valid application/x-www-form-urlencoded") from None
    fields = {name: values[0] for name, values in form.items() if len(values) == 1}
    if fields.get("grant_type") != "password":
        raise ServingError(400, "unsupported_grant_type", "grant_type must be 'password'")
    if "username" not in fields or "password" not in fields:
        raise ServingError(400, "bad_request", "the form needs username and password")
    wanted = frozenset(fields["scope"].split()) if fields.get("scope") else None
    return _bounded(fields["username"], fields["password"], wanted, basic=False)


def _bounded(username: str, password: str, wanted: frozenset[str] | None, *, basic: bool) -> tuple[str, str, frozenset[str] | None, bool]:
    if not username or len(username) > 128 or len(password) > MAX_PASSWORD:
        raise LoginFailed(basic=basic)
    return username, password, wanted, basic
