"""The shadow runner: the candidate scores copies of production's validated inputs on a thread of its own.

The request path only appends an item to a bounded deque (no lock, no wake-up): a full queue drops it and counts it, so a
slow or failing candidate never fails or changes an answer. The thread wakes every `TICK` seconds, never per request
(a wake-up per request would take the GIL right after each answer), takes what is queued (up to `GROUP` requests)
for one model call, and keeps its share of the process's time under `SHARE` (it rests `busy × (1/SHARE − 1)` after
each call, the GIL released): past that share the queue fills and items are dropped rather than production slowed.
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
Score = Callable[[list[Any]], None]


class ShadowRunner:
    """One candidate's queue and thread; `close` drops what waits and lets the call in progress finish."""

    def __init__(self, name: str, score: Score, size: int = QUEUE, share: float = SHARE) -> None:
        self._score, self._share, self._size = score, share, size
        self._queue: deque[Any] = deque()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sealserve-shadow-{name}", daemon=True)
        self._thread.start()

    def offer(self, item: Any) -> bool:
        """Queue `item`; False (dropped) when the queue is full or the runner closed."""
        if self._closed.is_set() or len(self._queue) >= self._size:
            return False
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

    def _run(self) -> None:
        rest = TICK
        while not self._closed.wait(rest):
            items: list[Any] = []
            while len(items) < GROUP:
                try:
                    items.append(self._queue.popleft())
                except IndexError:
                    break
            if not items:
                rest = TICK
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
