"""Read a request body under a byte limit and a deadline, before any parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ServingError

JSON_TYPES = ("application/json", "")
DRAIN_SECONDS = 1.0


async def read_json_body(request: Request, limits: RequestLimits, *, json_only: bool = True) -> bytes:
    """The raw body (parsed later straight from bytes); 413 past the size limit, 408 when it has not all arrived within
    `limits.body_timeout` seconds (a slow client cannot hold a connection open), 415 for non-JSON unless `json_only` is off."""
    max_bytes = limits.max_body_bytes
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if json_only and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise ServingError(415, "unsupported_media_type", f"expected application/json, got {media_type}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        await drain(request.stream(), 0, 2 * max_bytes)
        raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for chunk in stream:
                size += len(chunk)
                if size > max_bytes:
                    await drain(stream, size, 2 * max_bytes)
                    raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ServingError(408, "request_timeout", f"the request body did not arrive within {limits.body_timeout:g} seconds") from None
    return b"".join(chunks)


async def drain(stream: AsyncIterator[bytes], received: int, budget: int) -> None:
    """Read and drop the rest of a refused body, up to `budget` bytes in all and DRAIN_SECONDS, before answering.

    Clients that send the whole body before reading (urllib, requests) and ask to close the connection would
    otherwise meet a reset instead of the answer: closing a socket with unread data sends RST, not FIN.
    """
    if received >= budget:
        return
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in stream:
                received += len(chunk)
                if received >= budget:
                    return
    except TimeoutError:
        return
