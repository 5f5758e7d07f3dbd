"""Microseconds each cross-cutting feature adds to one request, each timed alone with `timeit` (steady on a busy
machine, unlike end-to-end runs): the metrics, drift and access-log work after a prediction, and authentication.

Usage: .venv/bin/python benchmarks/per_request_costs.py
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API_KEY = "ssk_" + "k" * 43
SECRET = "s" * 48
RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def per_call_us(call: Callable[[], Any], number: int = 20000) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


async def observing(results: dict[str, float]) -> None:
    """The hooks of a served model, called as the data plane calls them after a real prediction."""
    from sealserve.serve.app import create_app
    from sealserve.serve.config import validate_config
    from sealserve.serve.observability.access_log import AccessLines, _fields
    from sealserve.serve.request.dataplane import InferenceRequest
    from sealserve.serve.request.paths import Protocol
    from tests.support.bundles import Workspace

    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace.create(Path(folder))
        workspace.publish("demo", "1.0.0")
        model = {"name": "demo", "store_url": workspace.store.url, "keyring": str(workspace.keyring), "trial_prediction": False}
        app = create_app(validate_config({"models": [model]}))
        async with app.router.lifespan_context(app):
            deadline = time.monotonic() + 60
            while not app.state.registry.ready and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            dataplane = app.state.dataplane
            request = InferenceRequest("demo", Protocol.NATIVE, lambda interface: [RECORD], rows=1)
            result = await dataplane.infer(request)
            for hook in dataplane.hooks:
                name = type(hook).__name__
                results[f"{name}.after (each request)"] = per_call_us(lambda hook=hook: hook.after(request, result, None))
                results[f"{name}.model_ran (each model call)"] = per_call_us(lambda hook=hook: hook.model_ran(result.served, 1, 1e-4))
            lines = AccessLines("json", io.BufferedWriter(io.FileIO(os.open(os.devnull, os.O_WRONLY), "wb"), 1 << 16))
            scope = {"method": "POST", "path": "/api/models/demo/prediction", "client": ("127.0.0.1", 1), "state": {}}
            headers = [(b"content-type", b"application/json"), (b"x-model-name", b"demo"), (b"x-model-version", b"1.0.0")]
            answer = {"status": 200, "headers": headers}
            results["access line (each request)"] = per_call_us(lambda: lines.write(_fields(scope, "id", answer, 1e-4)))


def authenticating(results: dict[str, float]) -> None:
    """The authenticator alone, and Starlette's AuthenticationMiddleware with the scope gate around an empty app."""
    from starlette.middleware.authentication import AuthenticationMiddleware

    from sealserve.serve.auth.credentials import Authenticator
    from sealserve.serve.auth.http import AccessPolicy, CredentialsBackend, ScopeGate
    from sealserve.serve.config import Auth

    keys = [{"name": "bench", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "scopes": ["predict", "read"]}]
    authenticator = Authenticator.from_config(Auth.model_validate({"enabled": True, "api_keys": keys, "jwt": {"secret": SECRET}}))
    claims = {"sub": "bench", "exp": int(time.time()) + 3600, "iss": "sealserve", "aud": "sealserve", "scope": "predict read"}
    token = jwt.encode(claims, SECRET)
    assert authenticator.tokens is not None
    results["API key check"] = per_call_us(lambda: authenticator.authenticate(f"Bearer {API_KEY}", None))
    results["JWT check, already verified"] = per_call_us(lambda: authenticator.authenticate(f"Bearer {token}", None))
    results["JWT verification (first use of a token)"] = per_call_us(lambda: authenticator.tokens.verify(token), number=2000)  # type: ignore[union-attr]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    stack = AuthenticationMiddleware(ScopeGate(app, AccessPolicy([], ["docs", "metrics"]), None), backend=CredentialsBackend(authenticator))  # type: ignore[arg-type]
    for name, credential in (("API key", API_KEY), ("JWT", token)):
        base = {"type": "http", "method": "GET", "path": "/api/models", "headers": [(b"authorization", f"Bearer {credential}".encode())]}

        async def run(count: int = 20000, base: dict[str, Any] = base) -> float:
            started = time.perf_counter()
            for _ in range(count):
                await stack(dict(base), None, None)
            return (time.perf_counter() - started) / count * 1e6

        results[f"auth middleware + scope gate, {name}"] = min(asyncio.run(run()) for _ in range(5))


def main() -> None:
    results: dict[str, float] = {}
    asyncio.run(observing(results))
    authenticating(results)
    width = max(map(len, results))
    for name, microseconds in results.items():
        print(f"{name:<{width}}  {microseconds:8.2f} µs")


if __name__ == "__main__":
    main()
