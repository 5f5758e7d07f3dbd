"""Background loading and hot reload: one thread per app, owned by the app's lifespan, stopped at shutdown.

- Models load side by side (verification, load and trial prediction on up to one thread per core): each answers
  as soon as it is ready, readiness waits for all, and one model's reload never waits behind another's trial.
- First load of every model, then, for bundle models not loaded yet, retries with exponential
  backoff (`storage.retry_initial` doubling up to `storage.retry_max`, with jitter).
- Once a bundle model is served, its ref is checked every `storage.poll_interval` seconds; when an
  alias names another version the registry downloads, verifies and loads it, then swaps atomically.
  Requests already holding the old model finish on it. Failures keep the old model serving.
- A store that cannot be reached only marks storage degraded; polling carries on and recovers by itself.
- With several worker processes (`sync`, see fanout.py) the thread also applies the admin actions every
  worker must apply: it checks the shared desired state every `fanout.WATCH_INTERVAL` seconds.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait

from sealserve.serve.config import BundleSource, Storage
from sealserve.serve.lifecycle.fanout import WATCH_INTERVAL, WorkerSync
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState

logger = logging.getLogger("sealserve.reload")


class Reloader:
    """Runs the registry's loads and polls on a schedule; `stop()` ends the thread between two steps."""

    def __init__(self, registry: ModelRegistry, settings: Storage, sync: WorkerSync | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.sync = sync
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._loaders = Loaders(max(1, min(len(registry.states), os.cpu_count() or 1)))
        self._busy: dict[str, tuple[ModelState, Future[None]]] = {}  # touched by the reload thread only

    def load_initial(self) -> None:
        """Try every model once, side by side, and wait for all (with workers: after adopting the admin state every
        worker shares). A model unloaded by an admin before this worker started stays unloaded."""
        if self.sync is not None:
            self.sync.join()
        states = [state for state in self.registry.states if not state.unloaded]
        wait([self._loaders.submit(self.registry.load, state) for state in states])
        for state in self.registry.states:
            self._schedule(state)
        if self.sync is not None:
            self.sync.acknowledge()

    def start(self, *, initial: bool = True) -> None:
        """Start the thread; with `initial` it begins with the first load of every model."""
        if self._thread is not None:
            return
        if not initial:
            for state in self.registry.states:
                self._schedule(state)
        self._thread = threading.Thread(target=self._run, args=(initial,), name="sealserve-reload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("reload thread still busy after %.0fs (a transfer in progress); leaving it to exit", timeout)
        if self.sync is not None:
            self.sync.leave()  # admin actions stop waiting for this worker

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, initial: bool) -> None:
        try:
            if initial:
                self.load_initial()
            while not self._stop.is_set():
                if self.sync is not None:
                    for state in self.sync.poll():
                        self._schedule(state)
                self._collect()
                now = time.monotonic()
                for state in self.registry.states:
                    if self._stop.is_set():
                        return
                    if state.key not in self._busy and self._due.get(state.key, float("inf")) <= now:
                        self._busy[state.key] = (state, self._loaders.submit(self._step, state))
                pending = [due for key, due in self._due.items() if due != float("inf") and key not in self._busy]
                pending += [time.monotonic() + 0.05] if self._busy else []  # look again soon for finished steps
                pause = min(pending) - time.monotonic() if pending else 1.0
                self._stop.wait(min(max(pause, 0.01), 1.0 if self.sync is None else WATCH_INTERVAL))
        except Exception:  # never let the thread die silently: log, the app keeps serving what it has
            logger.exception("reload thread stopped by an unexpected error")

    def _collect(self) -> None:
        """Schedule the next look at each model whose load or poll has finished."""
        for key, (state, step) in list(self._busy.items()):
            if step.done():
                del self._busy[key]
                if step.exception() is not None:
                    logger.error("model %s: unexpected error while loading", key, exc_info=step.exception())
                self._schedule(state)

    def _step(self, state: ModelState) -> None:
        if state.unloaded:
            return
        if state.served is None:
            self.registry.load(state)
        else:
            self.registry.poll(state)

    def _schedule(self, state: ModelState) -> None:
        """When to look at this model next: retry with backoff until loaded, then poll at the interval."""
        if not isinstance(state.source, BundleSource):
            self._due[state.key] = float("inf")
            return
        now = time.monotonic()
        if state.served is None and not state.unloaded:
            delay = self._delay.get(state.key, self.settings.retry_initial)
            self._delay[state.key] = min(delay * 2, self.settings.retry_max)
            jittered = delay * random.uniform(0.8, 1.2)  # noqa: S311 - spreading retries, not cryptography
            self._due[state.key] = now + jittered
            logger.info("model %s not loaded yet; next attempt in %.1fs", state.key, jittered)
            return
        self._delay.pop(state.key, None)
        interval = self.settings.poll_interval
        self._due[state.key] = now + interval if interval > 0 else float("inf")


class Loaders:
    """Runs loads on daemon threads, at most `count` at a time: a load stuck in a transfer never holds up the exit."""

    def __init__(self, count: int) -> None:
        self._slots = threading.BoundedSemaphore(count)

    def submit(self, load: Callable[[ModelState], None], state: ModelState) -> Future[None]:
        future: Future[None] = Future()

        def run() -> None:
            with self._slots:
                future.set_running_or_notify_cancel()
                try:
                    load(state)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(None)

        threading.Thread(target=run, name=f"sealserve-load-{state.key}", daemon=True).start()
        return future
