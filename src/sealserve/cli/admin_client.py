"""The client side of the admin API, used by `sealserve admin` (standard library only: the CLI stays light)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from sealserve.errors import SealserveError


def call_admin(method: str, base: str, path: str, body: dict[str, Any] | None = None, credential: str | None = None) -> dict[str, Any]:
    """One admin API call (with a bearer credential when the server has auth on); every failure becomes a
    SealserveError with the server's own message."""
    if urlparse(base).scheme not in ("http", "https"):
        raise SealserveError(f"--url must be an http(s) URL, not {base!r}")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - scheme checked above
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        if exc.code == 401:
            message = f"{message} (set SEALSERVE_TOKEN to a token or API key with the admin scope)"
        if exc.code == 404 and "model" not in str(message):
            message = "the server has no admin endpoints; set `admin: {enabled: true}` in its config"
        raise SealserveError(f"{method} {path}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SealserveError(f"cannot reach {base}: {getattr(exc, 'reason', exc)}") from None
