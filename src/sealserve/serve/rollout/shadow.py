"""The shadow runner: the candidate scores copies of production's validated inputs on a thread of its own.

The request path only appends an item to a bounded deque (no lock, no wake-up): a full queue drops it and counts it, so a
slow or failing candidate never fails or changes an answer. The thread wakes every `TICK` seconds, never per request
(a wake-up per request would take the GIL right after each answer), takes what is queued (up to `GROUP` requests)
for one model call, and keeps its share of the process's time under `SHARE` (it rests `busy × (1/SHARE − 1)` after
each call, the GIL released). When a thread that serves requests (each thread that offers is watched) is busy `BUSY`
of the time or more, the server is saturated: what waits is dropped and counted instead of scored, and production keeps
the CPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("sealserve.rollout")

QUEUE = 1000  # requests waiting for the candidate; past it they are dropped and counted
GROUP = 256  # queued requests one candidate call scores together
SHARE = 0.05  # the most of the process's time the shadow thread takes (measured per call)
TICK = 0.05  # seconds between two looks at the queue
MAX_REST = 1.0  # seconds: the longest rest after one call
BUSY = 0.9  # the serving thread's share of time running or waiting for a CPU past which the server counts as saturated
WINDOW = 5  # looks over which that share is measured (about a quarter of a second)
MAX_SERVING = 64  # serving threads watched (the event loop's and a gRPC pool's); more are not, their load unread
Score = Callable[[list[Any]], None]
Shed = Callable[[int], None]


class ThreadLoad:
    """The share of time one thread of this process spent running or runnable (Linux's schedstat), over the last
    `WINDOW` looks: near 1 when it never waits for work, whether it runs or queues for a CPU."""

    def __init__(self, native_id: int) -> None:
        self._path = f"/proc/self/task/{native_id}/schedstat"
        self._looks: deque[tuple[float, int]] = deque(maxlen=WINDOW + 1)

    def share(self) -> float:
        """0.0 when the kernel does not say (no schedstat) or before two looks."""
        try:
            with open(self._path, "rb") as stat:
                running, waiting, _ = stat.read().split()
        except (OSError, ValueError):
            return 0.0
        self._looks.append((time.monotonic(), int(running) + int(waiting)))
        (first, busy_first), (last, busy_last) = self._looks[0], self._looks[-1]
        return (busy_last - busy_first) / 1e9 / (last - first) if last > first else 0.0


class ShadowRunner:
    """One candidate's queue and thread; `close` drops what waits and lets the call in progress finish.

    `shed(n)` is told of the `n` queued requests dropped unscored because the serving thread was saturated."""

    def __init__(self, name: str, score: Score, shed: Shed, size: int = QUEUE, share: float = SHARE) -> None:
        self._score, self._shed, self._share, self._size = score, shed, share, size
        self._queue: deque[Any] = deque()
        self._serving: dict[int, ThreadLoad] = {}  # the threads that offer (the event loop's, gRPC's), by native id
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sealserve-shadow-{name}", daemon=True)
        self._thread.start()

    def offer(self, item: Any) -> bool:
        """Queue `item`; False (dropped) when the queue is full or the runner closed."""
        if self._closed.is_set() or len(self._queue) >= self._size:
            return False
        serving = threading.get_native_id()
        if serving not in self._serving and len(self._serving) < MAX_SERVING:
            self._serving[serving] = ThreadLoad(serving)
        self._queue.append(item)  # deque appends are atomic; concurrent offers may pass the size by a few, no more
        return True

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._queue.clear()
        if timeout > 0 and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def saturated(self) -> bool:
        """Whether a thread that serves requests has been busy `BUSY` of the recent time or more."""
        return any([load.share() >= BUSY for load in list(self._serving.values())])  # every load looks, to keep its window

    def _run(self) -> None:
        rest = TICK
        while not self._closed.wait(rest):
            rest = TICK
            if self.saturated():
                self._shed_waiting()
                continue
            items: list[Any] = []
            while len(items) < GROUP:
                try:
                    items.append(self._queue.popleft())
                except IndexError:
                    break
            if not items:
                continue
            started = time.perf_counter()
            try:
                self._score(items)
            except Exception:  # the scorer records its own failures; this keeps the thread alive whatever happens
                logger.exception("shadow scoring failed")
            busy = time.perf_counter() - started
            rest = min(MAX_REST, busy * (1 / self._share - 1))
            if len(items) < GROUP:
                rest = max(rest, TICK)

    def _shed_waiting(self) -> None:
        shed = 0
        while True:
            try:
                self._queue.popleft()
            except IndexError:
                break
            shed += 1
        if shed:
            self._shed(shed)
