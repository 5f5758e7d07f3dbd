"""Request ids: the client's X-Request-ID when short and plain, else a fresh one; every protocol reads it the same way."""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

from starlette.requests import Request

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """Fresh ids: a random per-process prefix and a counter (unique, and far cheaper than uuid4 per request)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)

    def __call__(self, sent: bytes | None) -> str:
        """The client's id when it is short and plain (it is echoed and logged), else a fresh one."""
        if sent is not None:
            text = sent.decode("latin-1")
            if SANE_REQUEST_ID.fullmatch(text):
                return text
        return f"{self.prefix}{next(self.counter):08x}"


def request_id_of(request: Request) -> str | None:
    """The id AccessLog gave this request (None when the app runs without it)."""
    state: dict[str, Any] = request.scope.get("state", {})
    return state.get("request_id")
