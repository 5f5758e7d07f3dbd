"""Adaptive batching per model: concurrent callers' parts run together in one model call, each caller gets its own result.

- A background task (started by a `submit`, ended when the queue is empty) forms a batch from what is already queued: the first waiting
  part, then more queued parts in order while the total `size` stays ≤ `max_batch_size` (a larger part runs alone).
  With `max_latency_ms` > 0 it waits for more parts up to that long after the first part arrived, never longer; with
  0 (the default) it never waits, so an idle model answers a lone caller at once.
- While one batch runs, new parts queue and form the next one: under load batches grow by themselves.
- `run(parts)` returns one result per part, in order. Each caller's result is matched by position, never by content;
  a count mismatch or an exception fails every caller of that batch and the batcher carries on.
- The model code runs in an executor (by default one thread per batcher), so the event loop keeps answering probes.
- The queue is bounded: past `max_queue` waiting parts `submit` raises `OverloadedError` (503, Retry-After).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sealserve.serve.errors import OverloadedError

logger = logging.getLogger("sealserve.batching")

P = TypeVar("P")
R = TypeVar("R")


@dataclass
class BatchStats:
    """Plain counters a metrics exporter can read at any time (they are only written on the event loop)."""

    batches: int = 0
    parts: int = 0
    rows: int = 0
    failed_batches: int = 0
    rejected: int = 0
    queue_depth: int = 0
    largest_batch_rows: int = 0


@dataclass(eq=False)
class _Pending(Generic[P, R]):
    """One caller's part and the future only that caller awaits; compared by identity (parts may be arrays)."""

    part: P
    rows: int
    future: asyncio.Future[R]
    enqueued: float


class AdaptiveBatcher(Generic[P, R]):
    """Groups concurrent callers' parts into model calls bounded by `max_batch_size` rows; see the module docstring."""

    def __init__(
        self,
        run: Callable[[list[P]], list[R]],
        size: Callable[[P], int],
        *,
        max_batch_size: int,
        max_latency_ms: float = 0.0,
        max_queue: int = 1024,
        executor: concurrent.futures.Executor | None = None,
        name: str = "",
        observe: Callable[[int, list[float]], None] | None = None,
    ) -> None:
        """`observe(rows, waits)`, when given, sees each batch as it starts: its rows and each part's seconds in the queue."""
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_latency_ms < 0:
            raise ValueError(f"max_latency_ms must not be negative, got {max_latency_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000.0
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._observe = observe
        self._run = run
        self._size = size
        self._owns_executor = executor is None
        self._executor: concurrent.futures.Executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"sealserve-batch-{name}" if name else "sealserve-batch"
        )
        self._queue: deque[_Pending[P, R]] = deque()
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, part: P) -> R:
        """Queue `part` and return exactly the result `run` produced for it (or raise that batch's error)."""
        if self._closed:
            raise OverloadedError(self._shutting_down())
        loop = asyncio.get_running_loop()
        self._bind(loop)
        if len(self._queue) >= self.max_queue:
            self.stats.rejected += 1
            raise OverloadedError(f"model {self.name!r} has {len(self._queue)} requests queued; retry shortly")
        rows = self._size(part)
        if rows < 0:
            raise ValueError(f"size() returned {rows} for a part; sizes cannot be negative")
        item: _Pending[P, R] = _Pending(part, rows, loop.create_future(), loop.time())
        self._queue.append(item)
        self.stats.queue_depth = len(self._queue)
        self._wakeup.set()
        try:
            return await item.future
        except asyncio.CancelledError:
            # The client went away: free its slot now so it neither counts against the bound nor gets computed.
            if item in self._queue:
                self._queue.remove(item)
                self.stats.queue_depth = len(self._queue)
            raise

    async def close(self) -> None:
        """Refuse new parts, fail queued ones with `OverloadedError`, let a batch already running finish, then stop."""
        self._closed = True
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(OverloadedError(self._shutting_down()))
        self.stats.queue_depth = 0
        worker = self._worker
        if worker is not None and not worker.done() and self._loop is asyncio.get_running_loop():
            self._wakeup.set()
            await asyncio.wait({worker})  # unlike `await worker`, being cancelled here does not cancel the batch
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    @property
    def closed(self) -> bool:
        return self._closed

    def _shutting_down(self) -> str:
        return f"model {self.name!r} is shutting down; retry shortly"

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the worker on the caller's loop; a loop that has ended (tests, restarts) leaves nothing behind."""
        if self._loop is not loop:
            old = self._loop
            if old is not None and not old.is_closed() and self._worker is not None and not self._worker.done():
                raise RuntimeError(f"batcher {self.name!r} is already serving another running event loop")
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._queue.clear()  # futures of an ended loop: nobody can await them any more
            self._worker = None
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(), name=f"sealserve-batcher-{self.name}")
            self._worker.add_done_callback(self._worker_ended)

    async def _work(self) -> None:
        """Form and run batches one at a time while parts are queued; the next submit starts a new worker.

        Ending when idle means nothing keeps a swapped-out model alive: an idle batcher holds no task on the loop.
        """
        while True:
            if self._closed or not self._queue:
                return
            batch: list[_Pending[P, R]] = []
            try:
                rows, full = self._take(batch, 0)
                if batch and not full and self.max_latency > 0:
                    await self._fill(batch, rows)
                    if self._closed:
                        for item in batch:
                            if not item.future.done():
                                item.future.set_exception(OverloadedError(self._shutting_down()))
                        return
                await self._run_batch(batch)
            except BaseException as exc:
                # Never leave a taken caller waiting: cancelled with the loop, or failed if this worker breaks.
                for item in batch:
                    if not item.future.done():
                        if isinstance(exc, asyncio.CancelledError):
                            item.future.cancel()
                        else:
                            item.future.set_exception(RuntimeError(f"batcher {self.name!r} failed while running a batch"))
                raise

    async def _fill(self, batch: list[_Pending[P, R]], rows: int) -> None:
        """Wait for more parts until the batch is full or its first part has waited `max_latency_ms`, never longer."""
        loop = asyncio.get_running_loop()
        deadline = batch[0].enqueued + self.max_latency
        full = False
        while not full and not self._closed and loop.time() < deadline:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._wakeup.wait()
            rows, full = self._take(batch, rows)

    def _take(self, batch: list[_Pending[P, R]], rows: int) -> tuple[int, bool]:
        """Move queued parts into `batch` in arrival order while they fit; returns (rows, batch is full)."""
        full = False
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # cancelled by its caller
                self._queue.popleft()
                continue
            if batch and rows + item.rows > self.max_batch_size:
                full = True
                break
            self._queue.popleft()
            batch.append(item)
            rows += item.rows
            if rows >= self.max_batch_size:
                full = True
                break
        self.stats.queue_depth = len(self._queue)
        return rows, full

    async def _run_batch(self, batch: list[_Pending[P, R]]) -> None:
        """Run one batch in the executor and hand result i to caller i; any failure goes to every caller of the batch."""
        live = [item for item in batch if not item.future.done()]  # callers that left while the batch was forming
        if not live:
            return
        parts = [item.part for item in live]
        rows = sum(item.rows for item in live)
        self.stats.batches += 1
        self.stats.parts += len(live)
        self.stats.rows += rows
        self.stats.largest_batch_rows = max(self.stats.largest_batch_rows, rows)
        loop = asyncio.get_running_loop()
        if self._observe is not None:
            now = loop.time()
            self._observe(rows, [now - item.enqueued for item in live])
        try:
            results = await loop.run_in_executor(self._executor, self._call, parts)
        except asyncio.CancelledError:
            raise  # the loop is going away: `_work` cancels this batch's callers
        except Exception as exc:
            self.stats.failed_batches += 1
            for item in live:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, result in zip(live, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)

    def _call(self, parts: list[P]) -> list[R]:
        """Executor side: run the model and check it answered each part exactly once."""
        try:
            results = list(self._run(parts))
        except Exception:
            raise
        except BaseException as exc:  # e.g. SystemExit raised by model code: fail the batch, not the server
            raise RuntimeError(f"model run aborted by {type(exc).__name__}") from exc
        if len(results) != len(parts):
            raise RuntimeError(f"batched run returned {len(results)} results for {len(parts)} parts")
        return results

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        """Should the worker ever fail, queued callers get an error instead of waiting forever; the next submit restarts it."""
        if task is not self._worker or task.cancelled() or task.exception() is None:
            return
        logger.error("batcher %r worker failed", self.name, exc_info=task.exception())
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError(f"batcher {self.name!r} failed; retry"))
        self.stats.queue_depth = 0
