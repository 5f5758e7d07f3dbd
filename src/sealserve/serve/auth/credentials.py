"""Credentials to principals: API keys by their SHA-256, JWTs by one verifier per algorithm family.

Every transport hands the raw header values to `Authenticator.authenticate`; nothing else looks at a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt.types import Options

from sealserve.errors import ConfigError
from sealserve.serve.auth.keysets import KeySet
from sealserve.serve.auth.principal import SCOPE, AuthenticationFailed, MissingCredentials
from sealserve.serve.config import HS256_MIN_SECRET, Auth, Jwt
from sealserve.serve.errors import shown
from sealserve.serve.request.principal import Principal

logger = logging.getLogger("sealserve.auth")
MAX_CREDENTIAL = 8192  # bytes: longer than any key or token we issue or accept
TOKEN_CACHE = 4096  # verified tokens remembered until they expire: a token costs one verification, not one per request
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def key_digest(key: str) -> str:
    """The hex SHA-256 an API key is configured by (`sealserve auth api-key` prints it)."""
    return hashlib.sha256(key.encode()).hexdigest()


def read_secret(jwt_config: Jwt) -> bytes | None:
    """The HS256 secret from the config or its file (a mounted Secret); too short is refused at start-up."""
    if jwt_config.secret is not None:
        return jwt_config.secret.get_secret_value().encode()
    if jwt_config.secret_file is None:
        return None
    try:
        secret = jwt_config.secret_file.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"auth.jwt.secret_file {jwt_config.secret_file}: {exc.strerror}") from None
    if len(secret) < HS256_MIN_SECRET:
        raise ConfigError(
            f"auth.jwt.secret_file {jwt_config.secret_file} holds {len(secret)} bytes; at least {HS256_MIN_SECRET} are needed"
        )
    return secret


class ApiKeys:
    """Configured keys by digest. The presented key is hashed once and compared with every entry in constant time."""

    def __init__(self, entries: Mapping[str, tuple[str, frozenset[str]]]) -> None:
        self._entries = [(bytes.fromhex(digest), name, scopes) for digest, (name, scopes) in entries.items()]

    def check(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode()).digest()
        found: Principal | None = None
        for expected, name, scopes in self._entries:
            if hmac.compare_digest(digest, expected):
                found = Principal(name, "api_key", scopes)
        if found is None:
            raise AuthenticationFailed("unknown_key", "the API key is not valid")
        return found


class TokenVerifier(Protocol):
    """Checks one token's signature with the key its header names; claims are checked by the caller's options."""

    def key_for(self, header: Mapping[str, Any]) -> Any: ...


class SecretVerifier:
    """HS256 with the configured shared secret."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def key_for(self, header: Mapping[str, Any]) -> Any:
        return self.secret


class KeySetVerifier:
    """RS/PS/ES/EdDSA with the public key the JWKS holds under the token's kid, of exactly the token's algorithm."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    def key_for(self, header: Mapping[str, Any]) -> Any:
        kid = header.get("kid")
        key = self.keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            raise AuthenticationFailed("unknown_key", "the token is signed by a key the service does not trust")
        if key.algorithm_name != header.get("alg"):
            raise AuthenticationFailed("wrong_algorithm", f"the token's key {shown(str(kid))} is not a {shown(str(header.get('alg')))} key")
        return key.key


@dataclass(frozen=True)
class Claims:
    """How tokens are checked: required issuer and audience (None: not checked), allowed clock skew."""

    issuer: str | None
    audience: str | None
    leeway: float

    def options(self) -> Options:
        required = ["exp", "sub"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        return {"require": required, "verify_aud": True}


class Tokens:
    """JWT verification: the algorithm in the token's header picks the verifier (HS256: the secret; asymmetric: the
    JWKS); `none` and every algorithm without a configured verifier are refused before any key is looked up."""

    def __init__(self, verifiers: Mapping[str, TokenVerifier], claims: Claims, keys: KeySet | None = None) -> None:
        self.verifiers, self.claims, self.keys = dict(verifiers), claims, keys

    @property
    def generation(self) -> int:
        """Changes when the key set changes, so cached verifications made with a removed key are forgotten."""
        return self.keys.generation if self.keys is not None else 0

    def verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthenticationFailed("malformed", "the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        verifier = self.verifiers.get(algorithm) if isinstance(algorithm, str) else None
        if verifier is None or not isinstance(algorithm, str):
            raise AuthenticationFailed("wrong_algorithm", f"tokens signed with {shown(str(algorithm))} are not accepted")
        try:
            claims = jwt.decode(
                token,
                verifier.key_for(header),
                algorithms=[algorithm],
                audience=self.claims.audience,
                issuer=self.claims.issuer,
                leeway=self.claims.leeway,
                options=self.claims.options(),
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("expired", "the token has expired", subject=_unverified_subject(token)) from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationFailed("not_yet_valid", "the token is not valid yet", subject=_unverified_subject(token)) from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
            reason = "wrong_audience" if isinstance(exc, jwt.InvalidAudienceError) else "wrong_issuer"
            raise AuthenticationFailed(
                reason, f"the token's {reason.split('_')[1]} is not accepted here", subject=_unverified_subject(token)
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed("missing_claim", f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed("bad_signature", "the token's signature does not verify") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise AuthenticationFailed("invalid", "the token is not valid") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationFailed("missing_claim", "the token's 'sub' claim is not a string")
        return Principal(subject[:128], "token", token_scopes(claims)), float(claims["exp"])


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from `scope` (space-separated, RFC 8693) or `scp` (a list or a string); unknown scopes are dropped."""
    raw = claims.get("scope", claims.get("scp", ""))
    values = raw.split() if isinstance(raw, str) else [value for value in raw if isinstance(value, str)] if isinstance(raw, list) else []
    return frozenset(value for value in values[:64] if SCOPE.fullmatch(value))


def _unverified_subject(token: str) -> str | None:
    """For the log of a refused token whose signature did verify (expired, wrong audience): who it was."""
    try:
        subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.InvalidTokenError:
        return None
    return subject[:128] if isinstance(subject, str) else None


class Authenticator:
    """The one place credentials are checked: `Authorization: Bearer <JWT or API key>` or `X-API-Key: <key>`."""

    def __init__(self, keys: ApiKeys, tokens: Tokens | None, secret: bytes | None = None) -> None:
        self.keys, self.tokens = keys, tokens
        self.secret = secret  # HS256: what the token endpoint signs with
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._generation = tokens.generation if tokens is not None else 0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, auth: Auth) -> Authenticator:
        keys = ApiKeys({entry.sha256.lower(): (entry.name, frozenset(entry.scopes)) for entry in auth.api_keys})
        if auth.jwt is None:
            return cls(keys, None)
        verifiers: dict[str, TokenVerifier] = {}
        secret = read_secret(auth.jwt)
        if secret is not None:
            verifiers["HS256"] = SecretVerifier(secret)
        key_set = None
        if auth.jwt.jwks_file is not None or auth.jwt.jwks_url is not None:
            key_set = KeySet(auth.jwt.jwks_file, auth.jwt.jwks_url, auth.jwt.jwks_cache_seconds)
            verifiers.update(dict.fromkeys(ASYMMETRIC, KeySetVerifier(key_set)))
        return cls(keys, Tokens(verifiers, Claims(auth.jwt.issuer, auth.jwt.audience, auth.jwt.leeway), key_set), secret)

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal | None:
        """The caller, or None when no credentials were sent (another scheme, such as Basic, counts as none)."""
        bearer = bearer_of(authorization)
        if bearer is not None and api_key is not None:
            raise AuthenticationFailed(
                "ambiguous", "send one credential: a bearer token or an X-API-Key, not both", error="invalid_request"
            )
        credential = bearer if bearer is not None else api_key
        if credential is None:
            return None
        if not credential or len(credential) > MAX_CREDENTIAL:
            raise AuthenticationFailed("malformed", "the credential is empty or too long")
        if bearer is not None and credential.count(".") == 2:
            return self._token(credential)
        return self.keys.check(credential)

    def _token(self, token: str) -> Principal:
        if self.tokens is None:
            raise AuthenticationFailed("no_tokens", "this service accepts API keys only")
        remembered = self._remembered(token)
        if remembered is not None:
            return remembered
        principal, expires = self.tokens.verify(token)
        with self._lock:
            self._verified[token] = (principal, expires)
            if len(self._verified) > TOKEN_CACHE:
                self._verified.popitem(last=False)
        return principal

    def _remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before with the current key set, while it has not expired."""
        assert self.tokens is not None
        with self._lock:
            if self.tokens.generation != self._generation:
                self._verified.clear()
                self._generation = self.tokens.generation
            cached = self._verified.get(token)
            if cached is None or time.time() > cached[1] + self.tokens.claims.leeway:
                return None
            self._verified.move_to_end(token)
            return cached[0]

    def may_fetch(self, authorization: str | None) -> bool:
        """Whether checking this credential may download a JWKS (a bearer JWT not verified yet, with jwks_url set):
        the HTTP transport then checks it off the event loop."""
        if self.tokens is None or self.tokens.keys is None or self.tokens.keys.url is None:
            return False
        token = bearer_of(authorization)
        return token is not None and token.count(".") == 2 and self._remembered(token) is None

    def require(self, authorization: str | None, api_key: str | None) -> Principal:
        principal = self.authenticate(authorization, api_key)
        if principal is None:
            raise MissingCredentials()
        return principal


def bearer_of(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer …` header (None for no header or another scheme)."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def log_failure(failure: AuthenticationFailed, transport: str, client: str | None) -> None:
    """A refused credential in the log: the reason, the caller when known (key name, token subject), never the secret."""
    logger.warning(
        "authentication failed: %s (%s, client %s%s)",
        failure.reason,
        transport,
        client or "unknown",
        f", subject {failure.subject!r}" if failure.subject else "",
    )
