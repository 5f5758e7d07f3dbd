"""The shadow runner: the candidate scores copies of production's validated inputs on a thread of its own.

The request path only offers a job to a bounded queue (`put_nowait`): a full queue drops the job and counts it, so
a slow or failing candidate never delays, fails or changes an answer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger("sealserve.rollout")

QUEUE = 1000  # requests waiting for the candidate; past it they are dropped and counted
Job = Callable[[], None]


class ShadowRunner:
    """One candidate's queue and thread; `close` lets the job in progress finish and drops the rest."""

    def __init__(self, name: str, size: int = QUEUE) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=size)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sealserve-shadow-{name}", daemon=True)
        self._thread.start()

    def offer(self, job: Job) -> bool:
        """Queue `job`; False (dropped) when the queue is full or the runner closed."""
        if self._closed.is_set():
            return False
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):  # the thread sees `_closed` after its current job anyway
            self._queue.put_nowait(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._closed.is_set():
                return
            try:
                job()
            except Exception:  # a job records its own failures; this keeps the thread alive whatever happens
                logger.exception("shadow job failed")
