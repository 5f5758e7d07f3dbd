"""The prediction log (opt-in per model): inputs, outputs, version, request id and time, as JSON Lines for audit
and replay. The request path only samples and enqueues; a writer thread serializes and writes, rotating by size.
A full queue (a slow disk) drops the record and counts it: the log never blocks a prediction.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from typing import Any

import orjson

from sealserve.runtime.bundle_model import BundleModel
from sealserve.serve.config import BundleSource
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.model_options import PredictionLog
from sealserve.serve.observability.records import InferenceRecord
from sealserve.serve.request.dataplane import Inference, InferenceHook, InferenceRequest

logger = logging.getLogger("sealserve.prediction_log")


@dataclass(frozen=True)
class _Entry:
    at: float
    request: InferenceRequest
    result: Inference


class ModelLog:
    """One model's log: its queue, writer thread and rotating file. `on_drop` hears of every record lost."""

    def __init__(self, name: str, settings: PredictionLog, on_drop: Callable[[str], None] = lambda name: None) -> None:
        self.name, self.settings, self.on_drop = name, settings, on_drop
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[_Entry | None] = queue.Queue(maxsize=settings.queue)
        self._handler = RotatingFileHandler(settings.path, maxBytes=settings.max_bytes, backupCount=settings.backups, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._random = random.Random()  # noqa: S311 (sampling, not security)
        self._thread = threading.Thread(target=self._write_all, name=f"prediction-log-{name}", daemon=True)
        self._thread.start()

    def offer(self, request: InferenceRequest, result: Inference) -> None:
        if self.settings.sample < 1.0 and self._random.random() >= self.settings.sample:
            return
        try:
            self._queue.put_nowait(_Entry(time.time(), request, result))
        except queue.Full:
            self._drop()

    def _drop(self, count: int = 1) -> None:
        self.dropped += count
        for _ in range(count):
            self.on_drop(self.name)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop (records still queued after `timeout` are lost and counted)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            self._drop(self._queue.qsize())
        self._thread.join(timeout)
        self._handler.close()

    def _write_all(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            try:
                line = orjson.dumps(record_of(entry)).decode()
                self._handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))
                self.written += 1
            except Exception:
                self._drop()
                logger.exception("prediction log of %s: a record could not be written", self.name)


def record_of(entry: _Entry) -> dict[str, Any]:
    """One JSON Lines record: the inputs as the client sent them (category labels, not codes) and the native outputs."""
    result = entry.result
    return {
        **InferenceRecord.of(entry.request, result, entry.at).fields(),
        "inputs": client_inputs(result.served, result.inputs),
        "outputs": result.interface.json_outputs(result.outputs),
    }


def client_inputs(served: ServedModel, batch: Any) -> list[dict[str, Any]]:
    model = served.model
    assert isinstance(model, BundleModel)
    names = model.adapter.names
    return [dict(zip(names, row, strict=True)) for row in zip(*model.client_columns(batch), strict=True)]


class PredictionLogs(InferenceHook):
    """The prediction logs of the models that asked for one; counts its drops for /metrics."""

    def __init__(self, registry: ModelRegistry, on_drop: Callable[[str], None] = lambda name: None) -> None:
        self.logs = {
            state.source.name: ModelLog(state.source.name, state.source.prediction_log, on_drop)
            for state in registry.states
            if isinstance(state.source, BundleSource) and state.source.prediction_log is not None
        }

    def after(self, request: InferenceRequest, result: Inference | None, error: ServingError | None) -> None:
        if result is not None and request.purpose == "predict":  # the log records predictions, not explanations
            log = self.logs.get(result.served.name)
            if log is not None:
                log.offer(request, result)

    def close(self) -> None:
        for log in self.logs.values():
            log.close()
