"""Read a request body under a byte limit, before any parsing; and the loopback guard for admin calls."""

from __future__ import annotations

from ipaddress import ip_address

from fastapi import Request

from sealserve.serve.errors import ServingError

JSON_TYPES = ("application/json", "")


async def read_json_body(request: Request, max_bytes: int, *, json_only: bool = True) -> bytes:
    """The raw body (pydantic parses it straight from bytes); 413 past the limit, 415 for non-JSON unless `json_only` is off."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if json_only and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise ServingError(415, "unsupported_media_type", f"expected application/json, got {media_type}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_loopback(request: Request, what: str) -> None:
    """Admin operations answer loopback clients only until authentication (an admin scope) exists."""
    host = request.client.host if request.client else ""
    try:
        loopback = ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ServingError(403, "forbidden", f"{what} answers loopback clients only until authentication exists")
