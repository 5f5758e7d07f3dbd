"""Prometheus metrics of one service, fed by the data plane's hooks and the registry's load outcomes.

Label values come only from configured model names and fixed sets (protocol, status class, error kind), so a client
cannot create series. With several worker processes `sealserve serve` sets PROMETHEUS_MULTIPROC_DIR and every worker
writes to its own files, which `/metrics` adds up (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sealserve.errors import SealserveError, StoreError
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.registry import LoadOutcome, ModelRegistry
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request.dataplane import Inference, InferenceHook, InferenceRequest
from sealserve.serve.settings import MULTIPROCESS_ENV

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
UNKNOWN_MODEL = ""  # the one label value every unconfigured name shares
ERROR_KINDS = ("validation", "not_found", "auth", "overload", "unavailable", "internal")


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def error_kind(error: ServingError) -> str:
    """One of ERROR_KINDS: what went wrong, coarse enough to alert on."""
    if error.status in (401, 403):
        return "auth"
    if error.code == "overloaded" or error.status == 429:
        return "overload"
    if error.status == 404:
        return "not_found"
    if error.status == 503:
        return "unavailable"
    if error.status >= 500:
        return "internal"
    return "validation"


class Metrics:
    """Every metric the service exports, in a registry of its own (no process-wide state beyond multiprocess files)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        request_labels = ("model", "version", "protocol", "status_class")
        self.requests = Counter("sealserve_requests", "Inference requests answered.", request_labels, registry=registry)
        self.request_seconds = Histogram(
            "sealserve_request_duration_seconds",
            "Inference request latency in the server, from decoding to the answer.",
            request_labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.prediction_seconds = Histogram(
            "sealserve_prediction_duration_seconds",
            "Model-only time of each model call (several callers' rows when batched).",
            ("model", "version"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_seconds = Histogram(
            "sealserve_queue_duration_seconds",
            "Time a request waited in its model's batching queue.",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "sealserve_batch_size_rows", "Rows in each batched model call.", ("model",), buckets=ROW_BUCKETS, registry=registry
        )
        self.errors = Counter("sealserve_errors", "Failed inference requests by kind.", ("model", "protocol", "kind"), registry=registry)
        self.load_seconds = Histogram(
            "sealserve_model_load_duration_seconds",
            "Fetch, verification and load time of each load attempt.",
            ("model", "outcome"),
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
            registry=registry,
        )
        self.verification_failures = Counter(
            "sealserve_verification_failures",
            "Bundles refused at load, by reason (the error's type).",
            ("model", "reason"),
            registry=registry,
        )
        self.prediction_log_dropped = Counter(
            "sealserve_prediction_log_dropped",
            "Prediction-log records lost to a full queue or a write error.",
            ("model",),
            registry=registry,
        )
        self.events_dropped = Counter(
            "sealserve_events_dropped",
            "Inference events not delivered: queue_full, failed (refused, or unreachable after every retry), timeout, shutdown.",
            ("model", "reason"),
            registry=registry,
        )
        self.events_sent = Counter("sealserve_events_sent", "Inference events their sink accepted.", ("model",), registry=registry)
        self.drift_psi = Gauge(
            "sealserve_drift_psi",
            "PSI of each feature's recent inputs against its training distribution (the highest over workers).",
            ("model", "feature"),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_info = Gauge(
            "sealserve_model_info",
            "The version each model serves: 1 for the current one.",
            ("model", "version", "signer_kid", "bundle_digest", "runtime", "signer"),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )

    def count_dropped_prediction(self, model: str) -> None:
        self.prediction_log_dropped.labels(model).inc()

    def count_dropped_events(self, model: str, reason: str, count: int) -> None:
        self.events_dropped.labels(model, reason).inc(count)

    def count_sent_events(self, model: str, count: int) -> None:
        self.events_sent.labels(model).inc(count)

    def exposition(self) -> bytes:
        """The text format; with several workers, the sum over every worker's files."""
        return bytes(generate_latest(self.combined()))

    def combined(self) -> CollectorRegistry:
        """This process's registry, or with several workers, one that adds up every worker's files."""
        directory = os.environ.get(MULTIPROCESS_ENV)
        if not directory:
            return self.registry
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
        return combined

    def request_totals(self) -> dict[str, tuple[float, float]]:
        """Per model, inference requests answered and those answered 5xx, since start, over every worker."""
        totals: dict[str, tuple[float, float]] = {}
        for family in self.combined().collect():
            if family.name != "sealserve_requests":
                continue
            for sample in family.samples:
                if sample.name != "sealserve_requests_total":
                    continue
                model = sample.labels["model"]
                requests, failures = totals.get(model, (0.0, 0.0))
                failed = sample.value if sample.labels["status_class"] == "5xx" else 0.0
                totals[model] = (requests + sample.value, failures + failed)
        return totals


RECENT = 2048  # requests per model kept for the web page's rate and percentiles
RECENT_SECONDS = 60.0


@dataclass(frozen=True)
class RecentTraffic:
    """One model's last minute as the web page shows it."""

    requests: int
    rate_per_second: float
    p50_ms: float | None
    p99_ms: float | None


class MetricsHook(InferenceHook):
    """Counts and times every inference request, model call and batch; sees model loads through the registry."""

    def __init__(self, metrics: Metrics, registry: ModelRegistry) -> None:
        self.metrics = metrics
        self._known = {state.key for state in registry.states}  # class models join under their served name once loaded
        self._info: dict[str, tuple[str, ...]] = {}
        self._recent: dict[str, deque[tuple[float, float]]] = {}
        self._ok: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._model_time: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        registry.on_outcome.append(self.loaded)

    def recent(self, model: str) -> RecentTraffic:
        """Successful requests of the last minute (at most RECENT of them): rate, median and 99th percentile latency."""
        now = time.perf_counter()
        seconds = [took for at, took in list(self._recent.get(model, ())) if now - at <= RECENT_SECONDS]
        if not seconds:
            return RecentTraffic(0, 0.0, None, None)
        p50, p99 = np.percentile(np.asarray(seconds), [50, 99]) * 1000
        return RecentTraffic(len(seconds), len(seconds) / RECENT_SECONDS, float(p50), float(p99))

    def model_label(self, name: str) -> str:
        return name if name in self._known else UNKNOWN_MODEL

    def after(self, request: InferenceRequest, result: Inference | None, error: ServingError | None) -> None:
        now = time.perf_counter()
        seconds = now - request.started
        if result is not None:
            served = result.served
            key = (served.name, served.version, request.protocol.value)
            children = self._ok.get(key)
            if children is None:  # labels() costs more than an observation: look each combination up once
                labels = (*key, "2xx")
                children = self._ok[key] = (self.metrics.requests.labels(*labels), self.metrics.request_seconds.labels(*labels))
            children[0].inc()
            children[1].observe(seconds)
            recent = self._recent.get(served.name)
            if recent is None:
                recent = self._recent.setdefault(served.name, deque(maxlen=RECENT))
            recent.append((now, seconds))
            return
        assert error is not None
        protocol = request.protocol.value
        model = self.model_label(request.model)
        labels = (model, "", protocol, status_class(error.status))
        self.metrics.errors.labels(model, protocol, error_kind(error)).inc()
        self.metrics.requests.labels(*labels).inc()
        self.metrics.request_seconds.labels(*labels).observe(seconds)

    def model_ran(self, served: ServedModel, rows: int, seconds: float) -> None:
        child = self._model_time.get((served.name, served.version))
        if child is None:
            child = self._model_time[(served.name, served.version)] = self.metrics.prediction_seconds.labels(served.name, served.version)
        child.observe(seconds)

    def batched(self, served: ServedModel, rows: int, waits: Sequence[float]) -> None:
        self.metrics.batch_rows.labels(served.name).observe(rows)
        queue = self.metrics.queue_seconds.labels(served.name)
        for wait in waits:
            queue.observe(wait)

    def loaded(self, outcome: LoadOutcome) -> None:
        """Load time of every attempt, refusals by reason, and the info series of the version now served."""
        name, served = outcome.state.key, outcome.served
        failed = outcome.error is not None
        self.metrics.load_seconds.labels(name, "failed" if failed else "loaded").observe(outcome.seconds)
        if isinstance(outcome.error, SealserveError) and not isinstance(outcome.error, StoreError):
            self.metrics.verification_failures.labels(name, type(outcome.error).__name__).inc()
        if served is None or failed:
            return
        self._known.add(served.name)
        by_key = (served.provenance or {}).get("method", "key") == "key"
        signer = served.signer or ""  # bounded: Signer.label is at most 128 printable characters
        labels = (served.name, served.version, signer if by_key else "", served.digest or "", served.runtime, signer)
        with self._lock:
            previous = self._info.get(name)
            if previous is not None and previous != labels:
                self.metrics.model_info.remove(*previous)
            self._info[name] = labels
        self.metrics.model_info.labels(*labels).set(1)


def metrics_route(metrics: Metrics, refresh: Callable[[], None]) -> Route:
    """GET /metrics; `refresh` first updates what is computed on demand (drift)."""

    async def scrape(request: Request) -> Response:
        await asyncio.to_thread(refresh)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return Route("/metrics", scrape, methods=["GET"], include_in_schema=False)
