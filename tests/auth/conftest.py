"""One real `sealserve serve` with auth on: API keys, HS256 tokens, a JWKS file (RSA and Ed25519), users, and gRPC.

Every credential is minted here with the test's own keys (pyjwt), so each case names exactly what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from sealserve.serve.auth.login import hash_password
from tests.protocols.conftest import publish_weather
from tests.support.bundles import Workspace
from tests.support.server import RunningServer, free_port, serve

ISSUER = AUDIENCE = "sealserve"
PASSWORDS = {"alice": "correct horse battery", "bob": "bcrypt staple 42"}
KEYS = {  # name → (key, scopes)
    "ci-pipeline": (f"ssk_{secrets.token_urlsafe(32)}", ["predict", "read"]),
    "demo-only": (f"ssk_{secrets.token_urlsafe(32)}", ["predict:demo"]),
    "dashboard": (f"ssk_{secrets.token_urlsafe(32)}", ["read"]),
    "ops": (f"ssk_{secrets.token_urlsafe(32)}", ["admin", "read"]),
}
MAX_USER_FAILURES = 3


def private_pem(key: Any) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def public_pem(key: Any) -> bytes:
    return bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "EdDSA"
    public = jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "use": "sig", "alg": algorithm}


@dataclass
class AuthServer:
    server: RunningServer
    grpc: str
    secret: str
    rsa_key: rsa.RSAPrivateKey
    ed_key: ed25519.Ed25519PrivateKey
    jwks_file: Path

    @property
    def url(self) -> str:
        return self.server.url

    def key(self, name: str) -> str:
        return KEYS[name][0]

    def token(self, subject: str = "svc", scopes: str | None = "predict read", **changes: Any) -> str:
        """An HS256 token as the service would issue it; `changes` override or (with None) drop claims."""
        now = int(time.time())
        claims: dict[str, Any] = {"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 300, "scope": scopes}
        key: Any = changes.pop("key", self.secret)
        algorithm = changes.pop("algorithm", "HS256")
        headers = changes.pop("headers", None)
        claims.update(changes)
        return jwt.encode({name: value for name, value in claims.items() if value is not None}, key, algorithm=algorithm, headers=headers)

    def rsa_token(self, kid: str = "rsa-1", key: Any = None, **changes: Any) -> str:
        return self.token(key=key or self.rsa_key, algorithm="RS256", headers={"kid": kid}, **changes)

    def write_jwks(self, *entries: dict[str, Any]) -> None:
        self.jwks_file.write_text(json.dumps({"keys": list(entries)}))

    def secrets(self) -> list[str]:
        """Everything that must never reach a log."""
        return [self.secret, *(key for key, _ in KEYS.values()), *PASSWORDS.values()]


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("auth")
    space = Workspace.create(root)
    space.publish("demo", "1.0.0")
    publish_weather(space)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    jwks_file = root / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [jwk(rsa_key, "rsa-1"), jwk(ed_key, "ed-1")]}))
    secret = secrets.token_urlsafe(48)
    users = [
        {"username": "alice", "password_hash": hash_password(PASSWORDS["alice"]), "scopes": ["predict", "read"]},
        {
            "username": "bob",
            "password_hash": bcrypt.hashpw(PASSWORDS["bob"].encode(), bcrypt.gensalt(rounds=4)).decode(),
            "scopes": ["read"],
        },
    ]
    auth = {
        "enabled": True,
        "api_keys": [
            {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": scopes} for name, (key, scopes) in KEYS.items()
        ],
        "jwt": {"secret": "${SEALSERVE_JWT_SECRET}", "jwks_file": str(jwks_file), "issuer": ISSUER, "audience": AUDIENCE, "token_ttl": 120},
        "users": users,
        "login_limit": {"per_user": MAX_USER_FAILURES, "per_client": 100, "window": 600},
    }
    config = space.config(
        root / "service.yaml", {"name": "demo"}, {"name": "weather"}, auth=auth, admin={"enabled": True}, protocols={"v2_repository": True}
    )
    grpc_port = free_port()
    with serve(config, root, env={"SEALSERVE_JWT_SECRET": secret}, extra_args=("--grpc-port", str(grpc_port))) as server:
        yield AuthServer(server, f"127.0.0.1:{grpc_port}", secret, rsa_key, ed_key, jwks_file)
        assert "Traceback" not in server.log(), server.log()
