"""Auth building blocks: config validation, key sets (file and URL), scopes, login counters and the `sealserve auth` CLI."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.requests import HTTPConnection
from starlette.responses import Response

from sealserve.errors import ConfigError
from sealserve.serve.auth.credentials import Authenticator, key_digest, token_scopes
from sealserve.serve.auth.http import CredentialsBackend
from sealserve.serve.auth.keysets import KeySet
from sealserve.serve.auth.login import FailureCounter, hash_password, password_matches
from sealserve.serve.auth.principal import AuthenticationFailed, MissingCredentials
from sealserve.serve.auth.session import session_credential
from sealserve.serve.config import Auth, validate_config
from sealserve.serve.errors import ServingError
from sealserve.serve.web.login_page import local_page, pages_for_browsers
from tests.auth.conftest import jwk
from tests.support.server import SEALSERVE

SECRET = "s" * 48
MODEL = {"name": "m", "store_url": "/nowhere", "keyring": "/nowhere/keyring.json"}


def config_error(auth: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        validate_config({"auth": auth, "models": [MODEL]})
    return str(error.value)


def test_the_config_refuses_auth_that_could_not_work_or_would_be_weak() -> None:
    assert "nobody could call the service" in config_error({"enabled": True})
    assert "shorter than 32 bytes" in config_error({"enabled": True, "jwt": {"secret": "short"}})
    assert "jwt.secret or jwt.secret_file is needed" in config_error(
        {"enabled": True, "users": [{"username": "a", "password_hash": hash_password("password1"), "scopes": ["read"]}]}
    )
    assert "argon2id or bcrypt" in config_error(
        {"enabled": True, "jwt": {"secret": SECRET}, "users": [{"username": "a", "password_hash": "plaintext", "scopes": ["read"]}]}
    )
    assert "String should match pattern" in config_error(
        {"enabled": True, "api_keys": [{"name": "k", "sha256": "0" * 64, "scopes": ["write"]}]}
    )
    assert "sha256" in config_error({"enabled": True, "api_keys": [{"name": "k", "sha256": "not hex", "scopes": ["read"]}]})
    duplicate = {"name": "k", "sha256": "0" * 64, "scopes": ["read"]}
    assert "must be unique: k" in config_error({"enabled": True, "api_keys": [duplicate, duplicate]})
    accepted = validate_config({"auth": {"enabled": True, "jwt": {"secret": SECRET}}, "models": [MODEL]})
    assert accepted.auth.jwt is not None
    assert SECRET not in repr(accepted)  # a secret never shows in a printed config


def test_a_short_secret_file_fails_start_up_and_a_good_one_verifies(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("\n")  # an empty mounted Secret must not mean "sign with the empty string"
    with pytest.raises(ConfigError, match="holds 0 bytes"):
        Authenticator.from_config(Auth(enabled=True, jwt={"secret_file": short}))  # type: ignore[arg-type]
    good = tmp_path / "good"
    good.write_text(SECRET + "\n")
    authenticator = Authenticator.from_config(Auth(enabled=True, jwt={"secret_file": good, "issuer": None, "audience": None}))  # type: ignore[arg-type]
    token = jwt.encode({"sub": "svc", "exp": int(time.time()) + 60, "scope": "read"}, SECRET, algorithm="HS256")
    principal = authenticator.authenticate(f"Bearer {token}", None)
    assert principal is not None
    assert principal.scopes == {"read"}


def test_api_keys_match_by_digest_and_credentials_are_bounded() -> None:
    authenticator = Authenticator.from_config(
        Auth(enabled=True, api_keys=[{"name": "ci", "sha256": key_digest("k1"), "scopes": ["predict"]}])
    )  # type: ignore[list-item]
    principal = authenticator.authenticate(None, "k1")
    assert principal is not None
    assert (principal.subject, principal.kind) == ("ci", "api_key")
    assert authenticator.authenticate("Basic YTpi", None) is None  # another scheme is no credential here (the token endpoint's)
    for authorization, api_key, reason in [
        (None, "k2", "unknown_key"),
        ("Bearer k1", "k1", "ambiguous"),
        (None, "x" * 10_000, "malformed"),
        ("Bearer a.b.c", None, "no_tokens"),
    ]:
        with pytest.raises(AuthenticationFailed) as failure:
            authenticator.authenticate(authorization, api_key)
        assert failure.value.reason == reason


def test_scopes_come_from_scope_or_scp_and_unknown_ones_are_dropped() -> None:
    assert token_scopes({"scope": "predict read write predict:demo"}) == {"predict", "read", "predict:demo"}
    assert token_scopes({"scp": ["admin", 7, "predict:a b"]}) == {"admin"}
    assert token_scopes({"scope": 12}) == frozenset()


def test_failure_counters_forget_after_their_window() -> None:
    counter = FailureCounter(limit=2, window=10.0)
    counter.failed("alice", 100.0)
    assert counter.retry_after("alice", 100.0) is None
    counter.failed("alice", 101.0)
    assert counter.retry_after("alice", 102.0) == pytest.approx(8.0)
    assert counter.retry_after("alice", 110.5) is None  # the first failure has aged out
    assert counter.retry_after("bob", 102.0) is None


def test_password_hashes_of_both_kinds_verify_and_nothing_else_does() -> None:
    import bcrypt

    argon = hash_password("correct horse")
    assert argon.startswith("$argon2id$")
    assert password_matches("correct horse", argon)
    assert not password_matches("wrong horse", argon)
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    assert password_matches("correct horse", hashed)
    assert not password_matches("x" * 100, hashed)  # past bcrypt's 72 bytes: refused, never truncated to a match
    assert not password_matches("correct horse", "$argon2id$garbage")


def test_a_jwks_file_ignores_symmetric_keys(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}))
    with pytest.raises(ConfigError, match="no RSA, EC or OKP public key"):
        KeySet(jwks, None, 300)
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.write_text(
        json.dumps(
            {
                "keys": [
                    {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                    {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "ec"},
                ]
            }
        )
    )
    keys = KeySet(jwks, None, 300)
    assert keys.key("hmac") is None
    found = keys.key("ec")
    assert found is not None
    assert found.algorithm_name == "ES256"


@pytest.fixture
def jwks_url() -> Iterator[tuple[str, dict[str, Any], list[int]]]:
    """An identity provider's JWKS endpoint on loopback: the document it serves, and a count of fetches."""
    document: dict[str, Any] = {"keys": []}
    fetches: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(1)
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks", document, fetches
    finally:
        server.shutdown()
        server.server_close()


def test_a_jwks_url_is_fetched_once_per_cache_period(jwks_url: tuple[str, dict[str, Any], list[int]]) -> None:
    url, document, fetches = jwks_url
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    document["keys"] = [jwk(first, "idp-1")]
    authenticator = Authenticator.from_config(Auth(enabled=True, jwt={"jwks_url": url, "issuer": "https://idp", "audience": "sealserve"}))  # type: ignore[arg-type]
    claims = {"sub": "svc", "iss": "https://idp", "aud": "sealserve", "exp": int(time.time()) + 60, "scp": ["predict"]}
    for subject in ("a", "b", "c"):
        token = jwt.encode({**claims, "sub": subject}, first, algorithm="RS256", headers={"kid": "idp-1"})
        assert authenticator.may_fetch(f"Bearer {token}")  # not seen yet: HTTP checks it off the event loop
        principal = asyncio.run(backend_principal(authenticator, token))
        assert principal is not None
        assert principal.subject == subject
        assert not authenticator.may_fetch(f"Bearer {token}")  # remembered: checked in line
    assert not authenticator.may_fetch("Bearer ssk_an-api-key")
    assert len(fetches) == 1
    unknown = jwt.encode(
        claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256", headers={"kid": "idp-2"}
    )
    for _ in range(5):  # a flood of unknown kids refetches at most once per UNKNOWN_KID_REFETCH_SECONDS
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate(f"Bearer {unknown}", None)
    assert len(fetches) == 2


async def backend_principal(authenticator: Authenticator, token: str) -> Any:
    """The HTTP backend's answer for a request carrying `token`."""
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())], "client": ("127.0.0.1", 1)}
    result = await CredentialsBackend(authenticator).authenticate(HTTPConnection(scope))
    return None if result is None else result[1]


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([SEALSERVE, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_the_cli_makes_api_keys_and_password_hashes_that_the_server_accepts() -> None:
    made = run_cli("auth", "api-key", "--name", "ci", "--scope", "predict", "--scope", "read")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    entry = yaml.safe_load(made.stderr.split("\n", 1)[1])[0]
    assert entry == {"name": "ci", "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": ["predict", "read"]}
    assert key not in made.stderr
    hashed = run_cli("auth", "hash-password", "--username", "alice", "--scope", "read", stdin="a long password\n")
    assert hashed.returncode == 0, hashed.stderr
    [user] = yaml.safe_load(hashed.stdout)
    assert password_matches("a long password", user["password_hash"])
    assert "a long password" not in hashed.stdout
    config = validate_config(
        {"auth": {"enabled": True, "api_keys": [entry], "jwt": {"secret": SECRET}, "users": [user]}, "models": [MODEL]}
    )
    principal = Authenticator.from_config(config.auth).authenticate(f"Bearer {key}", None)
    assert principal is not None
    assert principal.scopes == {"predict", "read"}
    wrong_scope = run_cli("auth", "api-key", "--name", "x", "--scope", "write")
    assert wrong_scope.returncode == 1
    assert wrong_scope.stderr.startswith("error (usage): Invalid value for --scope: scopes are predict")
    assert len(run_cli("auth", "secret").stdout.strip()) >= 64


def test_serve_refuses_unreadable_or_short_auth_material_with_one_clear_line(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    short = tmp_path / "short-secret"
    short.write_text("too short\n")
    cases = [
        ({"secret_file": str(tmp_path / "missing")}, "auth.jwt.secret_file"),
        ({"secret_file": str(short)}, "holds 9 bytes"),
        ({"jwks_file": str(jwks)}, "no RSA, EC or OKP public key"),
    ]
    for jwt_config, expected in cases:
        config = tmp_path / "service.yaml"
        config.write_text(yaml.safe_dump({"auth": {"enabled": True, "jwt": jwt_config}, "models": [MODEL]}))
        for workers in ("1", "2"):
            result = subprocess.run(
                [SEALSERVE, "serve", str(config), "--port", "0", "--workers", workers],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 1, result.stderr
            assert "error (ConfigError)" in result.stderr
            assert expected in result.stderr
            assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("wanted", "landing"),
    [
        ("/ui/models/demo", "/ui/models/demo"),
        ("/docs", "/docs"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/api/admin/models/demo/reload", "/"),
        ("/ui/login", "/"),
        (None, "/"),
    ],
)
def test_after_logging_in_a_browser_lands_only_on_one_of_the_services_pages(wanted: str | None, landing: str) -> None:
    assert local_page(wanted) == landing


def test_a_page_without_credentials_redirects_to_the_login_or_explains_how_to_send_them() -> None:
    def api(path: str, failure: ServingError) -> Response:
        return Response(failure.message, status_code=failure.status)

    with_login, without_login = pages_for_browsers(api, login=True), pages_for_browsers(api, login=False)
    redirected = with_login("/ui/models/demo", MissingCredentials())
    assert (redirected.status_code, redirected.headers["location"]) == (303, "/ui/login?next=/ui/models/demo")
    explained = without_login("/", MissingCredentials())
    assert explained.status_code == 401
    assert b"Authorization: Bearer" in explained.body
    assert explained.headers["www-authenticate"] == 'Bearer realm="sealserve"'
    assert with_login("/api/models/demo", MissingCredentials()).body == MissingCredentials().message.encode()  # the API's own 401
    assert with_login("/", ServingError(403, "forbidden", "no read scope")).status_code == 403


def test_the_session_cookie_is_a_credential_only_for_reading_pages() -> None:
    token = "header.claims.signature"
    cookie = [(b"cookie", f"theme=dark; sealserve_session={token}".encode())]
    for method, path in (("GET", "/"), ("GET", "/ui/models/demo"), ("HEAD", "/docs"), ("GET", "/openapi.json")):
        assert session_credential({"method": method, "path": path, "headers": cookie}) == token, (method, path)
    for method, path in (("POST", "/"), ("GET", "/api/models"), ("POST", "/api/models/demo/prediction"), ("GET", "/v2/models/demo")):
        assert session_credential({"method": method, "path": path, "headers": cookie}) is None, (method, path)
    api_key = [(b"cookie", b"sealserve_session=ssk_not_a_token")]
    assert session_credential({"method": "GET", "path": "/", "headers": api_key}) is None
