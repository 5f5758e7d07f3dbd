"""Read a request body under a byte limit and a deadline, before any parsing."""

from __future__ import annotations

import asyncio

from fastapi import Request

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ServingError

JSON_TYPES = ("application/json", "")


async def read_json_body(request: Request, limits: RequestLimits, *, json_only: bool = True) -> bytes:
    """The raw body (parsed later straight from bytes); 413 past the size limit, 408 when it has not all arrived within
    `limits.body_timeout` seconds (a slow client cannot hold a connection open), 415 for non-JSON unless `json_only` is off."""
    max_bytes = limits.max_body_bytes
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if json_only and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise ServingError(415, "unsupported_media_type", f"expected application/json, got {media_type}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ServingError(408, "request_timeout", f"the request body did not arrive within {limits.body_timeout:g} seconds") from None
    return b"".join(chunks)
