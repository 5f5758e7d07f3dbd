"""uvicorn's Server with a drain: on SIGTERM or SIGINT readiness turns 503 at once, new connections are still accepted
for `shutdown.drain_seconds` (while load balancers notice), then uvicorn's own graceful shutdown runs within
`shutdown.timeout` and the process exits 0.

uvicorn alone stops accepting at the first signal, and re-raises the signal once it is done, so the process ends
with -15. The steps, in the order they run: `handle_exit` notes the signal; `_begin` (on the loop) turns readiness
off through the app's Drain and answers requests in flight with `Connection: close`; `on_tick` ends uvicorn's main
loop once the drain window has passed; `shutdown` closes the gRPC port with the HTTP listener, lets uvicorn wait for
requests in flight (`timeout_graceful_shutdown`) and run the app's lifespan shutdown (batches, prediction log,
inference events, trials), all within the timeout; past it a watchdog thread ends the process at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from types import FrameType

import uvicorn

from sealserve.serve.config import Shutdown
from sealserve.serve.request.drain import STATE_KEY, Drain

logger = logging.getLogger("sealserve.shutdown")
FLUSH_RESERVE = 5.0  # seconds of the timeout kept for flushing after requests in flight (at most a quarter of it)


def in_flight_seconds(settings: Shutdown) -> float:
    """How long requests and calls in flight may take once the listeners close; the rest of the timeout is for flushing."""
    return settings.timeout - min(FLUSH_RESERVE, settings.timeout / 4)


class DrainingServer(uvicorn.Server):
    """One server process (the only one, or a worker); its steps are in the module's docstring."""

    def __init__(self, config: uvicorn.Config, settings: Shutdown) -> None:
        super().__init__(config)
        self.settings = settings
        self.signalled_at: float | None = None
        self.requests_before = 0  # HTTP responses completed before the drain began
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The first signal starts the drain (not recorded for a re-raise: the exit is a clean 0); SIGINT again forces
        the exit, as in uvicorn. A signal before start-up is done stops the server once it is (nothing was accepted)."""
        if self.signalled_at is not None:
            if sig == signal.SIGINT:
                self.should_exit = self.force_exit = True
            return
        self.signalled_at = time.monotonic()
        if not self.started or self.loop is None:
            self.should_exit = True
            return
        self.loop.call_soon_threadsafe(self._begin, signal.Signals(sig).name)

    def _begin(self, name: str) -> None:
        drain = self._drain()
        if drain is not None:
            drain.begin()
        in_flight = 0
        for connection in self.server_state.connections:
            cycle = getattr(connection, "cycle", None)
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False
                in_flight += 1
        self.requests_before = self.server_state.total_requests
        logger.info(
            "%s: draining; readiness reports 503, new connections accepted for %g s more, %d HTTP requests in flight",
            name,
            self.settings.drain_seconds,
            in_flight,
        )

    async def on_tick(self, counter: int) -> bool:
        if self.signalled_at is not None and time.monotonic() >= self.signalled_at + self.settings.drain_seconds:
            return True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        watchdog = threading.Thread(target=_exit_at, args=(started + self.settings.timeout,), name="sealserve-shutdown", daemon=True)
        watchdog.start()
        drain = self._drain()
        if drain is not None:
            drain.stop_accepting(in_flight_seconds(self.settings))
        await super().shutdown(sockets)
        finished = self.server_state.total_requests - self.requests_before if self.signalled_at is not None else 0
        logger.info(
            "drained in %.2f s: %d HTTP requests and %d gRPC calls finished since the drain began; logs flushed",
            time.monotonic() - started,
            finished,
            drain.grpc_finished if drain is not None else 0,
        )

    def _drain(self) -> Drain | None:
        lifespan = getattr(self, "lifespan", None)
        drain = lifespan.state.get(STATE_KEY) if lifespan is not None else None
        return drain if isinstance(drain, Drain) else None


def _exit_at(deadline: float) -> None:
    """Past the timeout the process exits at once, whatever still runs: a model call in a thread (an HTTP request
    uvicorn cancelled, a gRPC call grpcio aborted) would otherwise hold the interpreter's exit until it returns."""
    time.sleep(max(deadline - time.monotonic(), 0.0))
    logger.error("shutdown.timeout passed with work still running; exiting now")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(0)
