"""Read a request body under a byte limit and a deadline, before any parsing."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ServingError

JSON_TYPES = ("application/json", "")
DRAIN_SECONDS = 1.0


async def read_json_body(request: Request, limits: RequestLimits, *, json_only: bool = True) -> bytes:
    """The raw body (parsed later straight from bytes); 413 past the size limit, 408 when it has not all arrived within
    `limits.body_timeout` seconds (a slow client cannot hold a connection open), 415 for non-JSON unless `json_only` is off.

    Reads the ASGI messages itself (no stream generator or header object per request); a client gone is ClientDisconnect,
    as from `request.stream()`, which drains what is left of a refused body."""
    max_bytes = limits.max_body_bytes
    content_type, declared = _framing(request.scope["headers"])
    media_type = content_type.split(";", 1)[0].strip().lower()
    if json_only and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise ServingError(415, "unsupported_media_type", f"expected application/json, got {media_type}")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        await drain(request.stream(), 0, 2 * max_bytes)
        raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
    receive = request.receive
    deadline = asyncio.get_running_loop().time() + limits.body_timeout
    chunks: list[bytes] = []
    size = 0
    more = True
    try:
        while more:
            message = await receive_by(receive, deadline)
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > max_bytes:
                if more:
                    async with asyncio.timeout_at(deadline):
                        await drain(request.stream(), size, 2 * max_bytes)
                raise ServingError(413, "payload_too_large", f"request body exceeds {max_bytes} bytes")
            chunks.append(chunk)
    except TimeoutError:
        raise ServingError(408, "request_timeout", f"the request body did not arrive within {limits.body_timeout:g} seconds") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def receive_by(receive: Receive, deadline: float) -> Message:
    """The next ASGI message, TimeoutError past `deadline` (the loop's clock). A message already there (a small body
    arrives with its headers) is taken without arming a timer, which costs more than the rest of reading it."""
    waiting = receive()
    if not isinstance(waiting, Coroutine):
        async with asyncio.timeout_at(deadline):
            return await waiting
    try:
        pending = waiting.send(None)
    except StopIteration as done:
        message: Message = done.value
        return message
    async with asyncio.timeout_at(deadline):
        return await _Resumed(waiting, pending)


class _Resumed:
    """The rest of a coroutine whose first step ran by hand and yielded `pending`: awaiting this awaits it (as
    `await` would have), so a cancellation, the timeout's included, reaches it where it waits."""

    def __init__(self, coroutine: Coroutine[Any, Any, Message], pending: Any) -> None:
        self.coroutine, self.pending = coroutine, pending

    def __await__(self) -> Generator[Any, Any, Message]:
        coroutine, pending = self.coroutine, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                try:
                    pending = coroutine.throw(exc)
                except StopIteration as done:
                    return typing.cast(Message, done.value)
            else:
                try:
                    pending = coroutine.send(sent)
                except StopIteration as done:
                    return typing.cast(Message, done.value)


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[str, str | None]:
    """The first Content-Type ("" when absent) and Content-Length of a request's raw ASGI headers (names in lower case)."""
    content_type: str | None = None
    length: str | None = None
    for key, value in headers:
        if key == b"content-type":
            if content_type is None:
                content_type = value.decode("latin-1")
        elif key == b"content-length" and length is None:
            length = value.decode("latin-1")
    return content_type or "", length


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
