"""The app's side of a graceful stop; the server (serve/shutdown.py) drives it, finding it in the lifespan state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the HTTP protocol imports this module in every worker before the app: it stays light
    from sealserve.serve.lifecycle.registry import ModelRegistry

STATE_KEY = "sealserve.drain"
UNANNOUNCED_GRACE = 5.0  # seconds, for a stop no draining server announced (plain uvicorn, a test client)


class Drain:
    """Draining turns every readiness answer to "not ready" and HTTP responses to `Connection: close`; when the HTTP
    listener closes, the other listeners (gRPC) stop accepting too, and what closes afterwards gets the time left."""

    def __init__(self, registry: ModelRegistry, grpc_answered: Callable[[], int] = lambda: 0) -> None:
        self.registry, self.grpc_answered = registry, grpc_answered
        self.draining = False
        self.deadline: float | None = None
        self.on_stop_accepting: list[Callable[[float], None]] = []
        self.grpc_before = 0

    def begin(self) -> None:
        if not self.draining:
            self.grpc_before = self.grpc_answered()
        self.draining = True
        self.registry.stopping = True

    @property
    def grpc_finished(self) -> int:
        """gRPC calls answered since the drain began."""
        return self.grpc_answered() - self.grpc_before

    def stop_accepting(self, grace: float) -> None:
        """New calls are refused from now on; calls in flight have `grace` seconds to finish."""
        self.begin()
        self.deadline = time.monotonic() + grace
        for stop in self.on_stop_accepting:
            stop(grace)

    def remaining(self) -> float:
        if self.deadline is None:
            return UNANNOUNCED_GRACE
        return max(self.deadline - time.monotonic(), 0.0)
