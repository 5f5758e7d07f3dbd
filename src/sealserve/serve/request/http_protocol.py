"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline on each request's head (a slowloris cannot hold a connection), and
each small response written once (`OneWrite`: head and body in one send).

uvicorn bounds the idle time between two requests on a connection (`timeout_keep_alive`) but not the time a client
takes to send a request line and headers: a connection that is opened and never sends anything, or sends its headers
a byte at a time, stays open for as long as the client likes, and enough of them exhaust the server's file descriptors
and connections. An ASGI middleware cannot help (the app sees a request only once its headers are complete), so the
deadline is kept here, per connection: from the moment the connection opens, or from the first bytes of a later
request on it, to the end of that request's headers. Past it the client is answered 408 and the connection closes.

Cost: no timer per connection; its deadline goes into one dict per server, swept every tenth of the timeout (at most
every second) while any head is pending. Per read, an identity check and a dict lookup. Measured in-process
(benchmarks/header_timeout.py): about 4 µs more per new connection (uvicorn's own: ~43 µs) and under 1 µs per request
on a kept-alive connection (~22 µs), i.e. below 1 % of a prediction request.

While the server drains (serve/shutdown.py), every request that starts is answered with `Connection: close`, so kept-alive
connections do not pin a stopping server.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from sealserve.serve.request.drain import STATE_KEY

DEFAULT_HEADER_TIMEOUT = 10.0


class _PendingHeads:
    """The connections of one server whose request head is not complete yet, with their deadlines; swept every tenth of
    the timeout (at most every second) while there are any, the late ones answered 408 and closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop, self.timeout = loop, timeout
        self.interval = min(max(timeout / 10, 0.05), 1.0)
        self.deadlines: dict[HeaderTimeoutProtocol, float] = {}
        self.sweeping = False

    def wait(self, connection: HeaderTimeoutProtocol) -> None:
        self.deadlines[connection] = self.loop.time() + self.timeout
        if not self.sweeping:
            self.sweeping = True
            self.loop.call_later(self.interval, self._sweep)

    def done(self, connection: HeaderTimeoutProtocol) -> None:
        self.deadlines.pop(connection, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        for connection in [connection for connection, deadline in self.deadlines.items() if deadline <= now]:
            del self.deadlines[connection]
            connection.head_timed_out()
        self.sweeping = bool(self.deadlines)
        if self.sweeping:
            self.loop.call_later(self.interval, self._sweep)


_PENDING: weakref.WeakKeyDictionary[ServerState, _PendingHeads] = weakref.WeakKeyDictionary()
_last: tuple[ServerState, _PendingHeads] | None = None  # a process serves one server: skip the weak lookup per connection


def _pending_heads(server_state: ServerState, loop: asyncio.AbstractEventLoop, timeout: float) -> _PendingHeads:
    global _last
    if _last is not None and _last[0] is server_state:
        return _last[1]
    pending = _PENDING.get(server_state)
    if pending is None:
        pending = _PENDING[server_state] = _PendingHeads(loop, timeout)
    _last = (server_state, pending)
    return pending


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """One attribute more than uvicorn's protocol (more would overflow CPython's shared-key instance dicts, which costs
    every attribute access of the parser callbacks about a microsecond per connection)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.pending_heads = _pending_heads(server_state, self.loop, header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport and cycle.scope["method"] != "HEAD":  # HEAD: a head alone
            cycle.transport = OneWrite(self.transport, self.loop)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        self.flush()
        super().on_response_complete()

    def shutdown(self) -> None:
        self.flush()
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        self.flush()
        super().send_400_response(msg)

    def flush(self) -> None:
        """What the current request's `OneWrite` holds goes out now: before the protocol itself writes or closes, and
        when a response completes, so nothing is ever held past its response."""
        cycle = self.cycle
        if cycle is not None and isinstance(cycle.transport, OneWrite):
            cycle.transport.flush()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.pending_heads.wait(self)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request's head is complete (the parser started its request-response cycle)
            self.pending_heads.done(self)
            drain = self.app_state.get(STATE_KEY)
            if drain is not None and drain.draining and self.cycle is not None:
                self.cycle.keep_alive = False  # answered with `Connection: close`: the client moves to another server
        elif (cycle is None or cycle.response_complete) and self not in self.pending_heads.deadlines and not self.transport.is_closing():
            self.pending_heads.wait(self)  # the first bytes of a later request

    def connection_lost(self, exc: Exception | None) -> None:
        self.pending_heads.done(self)
        super().connection_lost(exc)

    def head_timed_out(self) -> None:
        """No request is in progress here (its head is not complete): answer 408 and close."""
        if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed, or upgraded to another protocol
            return
        message = f"the request headers did not arrive within {self.pending_heads.timeout:g} seconds".encode()
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(message)
            + message
        )
        self.transport.close()


class OneWrite:
    """A request's view of its connection: uvicorn writes a response's head and its body separately, and on a TCP_NODELAY
    socket each write is a send() and a packet of its own (the largest own cost of a small answer under load). A write
    is held until the next one, which goes out joined with it, or until the loop's next turn, so a head and a body sent
    together leave in one write, in the same order, and nothing waits longer than one turn of the loop."""

    __slots__ = ("held", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport, self.loop = transport, loop
        self.held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self.held
        if held is None:
            self.held = bytes(data)
            self.loop.call_soon(self.flush)
        elif len(data) > JOINED_BYTES:  # a large body is not copied to join it
            self.held = None
            self.transport.write(held)
            self.transport.write(data)
        else:
            self.held = None
            self.transport.write(held + data)

    def flush(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


JOINED_BYTES = 64 << 10


def http_protocol(header_timeout: float) -> Callable[..., asyncio.Protocol]:
    """What uvicorn's `http` setting takes: a protocol factory (a partial, so it pickles into spawned workers)."""
    return functools.partial(HeaderTimeoutProtocol, header_timeout=header_timeout)
