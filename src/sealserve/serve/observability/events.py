"""Inference events (opt-in per model): each answered request and its response as CloudEvents to the model's sink, in
KServe's inference logger format. The request path only samples and enqueues; one sender thread per process builds,
redacts and POSTs them. An event that finds its model's queue full, or that its sink does not take within the time
budget, is dropped and counted: nothing here ever waits on a request.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sealserve.serve.config import BundleSource, ModelSource
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.model_options import Events
from sealserve.serve.observability.cloud_events import EventBuilder, EventOrigin, Message
from sealserve.serve.observability.records import InferenceRecord
from sealserve.serve.observability.sink import EventSink
from sealserve.serve.request.dataplane import Inference, InferenceHook, InferenceRequest
from sealserve.serve.request.responses import Exchange

logger = logging.getLogger("sealserve.events")
DROP_REASONS = ("queue_full", "failed", "timeout", "shutdown")
BATCH = 128  # requests whose events go out in one pipelined send
YIELD_EVERY = 8  # requests built between two hand-overs of the interpreter (about 100 µs of work)
LINGER = 0.005  # seconds the sender lets events gather before sending: one wake-up and one send for many
FLUSH_SECONDS = 5.0  # what is still queued at shutdown gets this long, then it is dropped and counted
ABORT_GRACE = 3.0  # for the sender to notice its POST in flight was ended (a backoff wait is at most 2 s)

Dropped = Callable[[str, str, int], None]  # model, one of DROP_REASONS, events
Sent = Callable[[str, int], None]  # model, events


def check_sinks(sources: Iterable[ModelSource]) -> None:
    """Every sink's token and CA files readable (ConfigError): at start-up, before any worker serves."""
    for source in sources:
        if isinstance(source, BundleSource) and source.events is not None:
            sink = EventSink(source.name, source.events)
            sink.check()
            sink.close()


def _ignore_dropped(model: str, reason: str, count: int) -> None:
    pass


def _ignore_sent(model: str, count: int) -> None:
    pass


@dataclass
class ModelEvents:
    """One model's settings, event builder and sink, and the permits that bound its queued requests."""

    name: str
    settings: Events
    builder: EventBuilder
    sink: EventSink
    permits: threading.BoundedSemaphore = field(init=False)
    per_request: int = field(init=False)  # events each queued request becomes

    def __post_init__(self) -> None:
        self.permits = threading.BoundedSemaphore(self.settings.queue)
        self.per_request = len(self.builder.types)


@dataclass(frozen=True)
class _Queued:
    model: ModelEvents
    record: InferenceRecord
    exchange: Exchange


class InferenceEvents(InferenceHook):
    """The events of the models that asked for them, and the one thread that sends them."""

    def __init__(self, registry: ModelRegistry, origin: EventOrigin, dropped: Dropped = _ignore_dropped, sent: Sent = _ignore_sent) -> None:
        self.models = {
            source.name: ModelEvents(source.name, source.events, EventBuilder(source.events, origin), EventSink(source.name, source.events))
            for source in (state.source for state in registry.states)
            if isinstance(source, BundleSource) and source.events is not None
        }
        self.dropped, self.sent = dropped, sent
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._random = random.Random()  # noqa: S311 (sampling, not security)
        self._stop_at = math.inf
        self._thread = threading.Thread(target=self._send_all, name="inference-events", daemon=True)

    def start(self) -> None:
        if self.models and not self._thread.is_alive():
            self._thread.start()

    def answered(self, request: InferenceRequest, result: Inference, exchange: Exchange) -> None:
        model = self.models.get(result.served.name)
        if model is None or (model.settings.sample < 1.0 and self._random.random() >= model.settings.sample):
            return
        if not model.permits.acquire(blocking=False):
            self.dropped(model.name, "queue_full", model.per_request)
            return
        self._queue.put(_Queued(model, InferenceRecord.of(request, result, time.time()), exchange))

    def close(self, flush_seconds: float = FLUSH_SECONDS) -> None:
        """Send what is queued for up to `flush_seconds`, then stop; anything left is dropped and counted."""
        self._stop_at = time.monotonic() + flush_seconds
        for model in self.models.values():
            model.sink.stop_at = self._stop_at
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(flush_seconds)
        if self._thread.is_alive():
            for model in self.models.values():
                model.sink.abort()
            self._thread.join(ABORT_GRACE)
        if not self._thread.is_alive():
            while (item := self._next()) is not None:
                self.dropped(item.model.name, "shutdown", item.model.per_request)
        for model in self.models.values():
            model.sink.close()

    def _next(self) -> _Queued | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _send_all(self) -> None:
        """Whatever is queued goes out together: one batch per model, pipelined to its sink."""
        while True:
            batch, stopping = self._batch()
            for model in {item.model.name: item.model for item in batch}.values():
                mine = [item for item in batch if item.model is model]
                try:
                    self._send(model, mine)
                finally:
                    for _ in mine:
                        model.permits.release()
            if stopping:
                return

    def _batch(self) -> tuple[list[_Queued], bool]:
        """What has queued up LINGER seconds after the first item, up to BATCH, and whether the stop sign came."""
        batch: list[_Queued] = []
        item = self._queue.get()
        if item is not None and time.monotonic() < self._stop_at:
            time.sleep(LINGER)  # a put wakes no one meanwhile: the request path pays nothing for the wait
        while item is not None:
            batch.append(item)
            if len(batch) == BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _send(self, model: ModelEvents, items: list[_Queued]) -> None:
        if time.monotonic() >= self._stop_at:
            self.dropped(model.name, "shutdown", model.per_request * len(items))
            return
        messages: list[Message] = []
        for number, item in enumerate(items):
            try:
                messages.extend(model.builder.messages(item.record, item.exchange))
            except Exception:
                self.dropped(model.name, "failed", model.per_request)
                logger.exception("inference events of %s: request %s could not become events", model.name, item.record.request_id)
            if number % YIELD_EVERY == YIELD_EVERY - 1:
                time.sleep(0)  # hand the interpreter to the request path: a long batch never holds the GIL for long
        outcomes = model.sink.deliver_all(messages, min(time.monotonic() + model.settings.timeout, self._stop_at)) if messages else []
        if outcomes.count(None):
            self.sent(model.name, outcomes.count(None))
        stopped = time.monotonic() >= self._stop_at  # out of budget because the server is stopping: counted as such
        reasons = Counter("shutdown" if stopped and outcome == "timeout" else outcome for outcome in outcomes if outcome is not None)
        for reason, count in reasons.items():
            self.dropped(model.name, reason, count)
