"""Input drift against the bundle's training statistics: the population stability index (PSI) per feature.

The request path only appends each validated batch to a bounded window (a deque append); values are read out,
binned and scored when someone asks (`GET /api/models/{name}/drift`, a `/metrics` scrape). Numeric features are
binned on the training deciles the bundle carries (outer bins open-ended); categories by label, unknown labels in
one extra bin; text by length. Each worker process keeps its own window.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter
from prometheus_client import Gauge
from starlette.responses import Response

from sealserve.bundle.metadata import Feature, FeatureKind, FeatureStatistics
from sealserve.runtime.bundle_model import BundleModel
from sealserve.serve.config import Drift
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request import paths
from sealserve.serve.request.dataplane import DataPlane, Inference, InferenceHook, InferenceRequest
from sealserve.serve.request.responses import json_response, model_headers

WINDOW = "drift_window"
SMOOTHING = 1e-4  # a bin empty on one side scores as this share, not zero (PSI would be infinite)
STATUS_ORDER = ("insufficient_data", "ok", "warn", "alert")


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float | None
    status: str
    bins: int
    reference_count: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "psi": self.psi, "status": self.status, "bins": self.bins, "reference_count": self.reference_count}


@dataclass(frozen=True)
class DriftReport:
    model: str
    version: str
    rows: int
    features: list[FeatureDrift]
    settings: Drift

    @property
    def status(self) -> str:
        return max((feature.status for feature in self.features), key=STATUS_ORDER.index, default="insufficient_data")

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "method": "psi",
            "status": self.status,
            "window_rows": self.rows,
            "thresholds": {"warn": self.settings.warn, "alert": self.settings.alert, "min_rows": self.settings.min_rows},
            "features": [feature.as_dict() for feature in self.features],
        }


class Reference:
    """One feature's training distribution as bins, and how to put served values into the same bins."""

    def __init__(self, feature: Feature, statistics: FeatureStatistics) -> None:
        self.feature, self.count = feature, statistics.count
        self.labels: dict[str, int] | None = None
        self.edges: np.ndarray | None = None
        if feature.kind is FeatureKind.CATEGORY and statistics.frequencies:
            self.labels = {label: index for index, label in enumerate(statistics.frequencies)}
            counts = [*statistics.frequencies.values(), 0]  # the last bin: labels training never saw
        elif statistics.bin_edges and statistics.bin_counts and len(statistics.bin_edges) > 2:
            self.edges = np.asarray(statistics.bin_edges[1:-1], dtype=np.float64)
            counts = list(statistics.bin_counts)
        else:
            counts = []
        self.expected = _shares(np.asarray(counts, dtype=np.float64)) if counts else None

    def bin_counts(self, values: Sequence[Any]) -> np.ndarray:
        assert self.expected is not None
        if self.labels is not None:
            other = len(self.labels)
            labels = [value for value in values if value is not None]
            indexes = np.fromiter((self.labels.get(str(label), other) for label in labels), dtype=np.int64, count=len(labels))
        else:
            numbers = np.asarray([_number(self.feature, value) for value in values if value is not None], dtype=np.float64)
            numbers = numbers[np.isfinite(numbers)]
            assert self.edges is not None
            indexes = np.searchsorted(self.edges, numbers, side="right")
        return np.bincount(indexes, minlength=len(self.expected)).astype(np.float64)

    def score(self, values: Sequence[Any]) -> float | None:
        if self.expected is None:
            return None
        observed = self.bin_counts(values)
        if observed.sum() == 0:
            return None
        actual = _shares(observed)
        return float(np.sum((actual - self.expected) * np.log(actual / self.expected)))


def _shares(counts: np.ndarray) -> np.ndarray:
    shares = counts / counts.sum() if counts.sum() else counts
    smoothed: np.ndarray = np.maximum(shares, SMOOTHING)
    return smoothed


def _number(feature: Feature, value: Any) -> float:
    if feature.kind is FeatureKind.TEXT:
        return float(len(value))
    return float(value)


class DriftWindow:
    """The most recent validated batches of one served model, at least `rows` rows, appended in O(1)."""

    def __init__(self, served: ServedModel, settings: Drift) -> None:
        model = served.model
        assert isinstance(model, BundleModel)
        metadata = model.metadata
        self.served, self.settings, self.model = served, settings, model
        self.features = list(metadata.features)
        self.references = {
            feature.name: Reference(feature, metadata.statistics[feature.name])
            for feature in self.features
            if feature.name in metadata.statistics
        }
        self._batches: deque[Any] = deque()
        self._rows = 0
        self._lock = threading.Lock()

    def add(self, batch: Any) -> None:
        with self._lock:
            self._batches.append(batch)
            self._rows += len(batch)
            while self._batches and self._rows - len(self._batches[0]) >= self.settings.window:
                self._rows -= len(self._batches.popleft())

    def recent_records(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` rows at most, as records of the values clients sent (the page's global importance)."""
        with self._lock:
            batches, rows = [], 0
            for batch in reversed(self._batches):
                if rows >= limit:
                    break
                batches.append(batch)
                rows += len(batch)
        names = [feature.name for feature in self.features]
        records: list[dict[str, Any]] = []
        for batch in reversed(batches):
            records.extend(dict(zip(names, row, strict=True)) for row in zip(*self.model.client_columns(batch), strict=True))
        return records[-limit:]

    def report(self) -> DriftReport:
        with self._lock:
            batches = list(self._batches)
        columns: list[list[Any]] = [[] for _ in self.features]  # each feature's values, oldest first, as clients send them
        for batch in batches:
            for column, values in zip(columns, self.model.client_columns(batch), strict=True):
                column.extend(values)
        rows = min(self.settings.window, len(columns[0]) if columns else 0)
        features = []
        for feature, values in zip(self.features, columns, strict=True):
            reference = self.references.get(feature.name)
            recent = values[-rows:] if rows else []
            psi = reference.score(recent) if reference is not None and rows >= self.settings.min_rows else None
            bins = 0 if reference is None or reference.expected is None else len(reference.expected)
            features.append(FeatureDrift(feature.name, psi, self._status(psi), bins, 0 if reference is None else reference.count))
        return DriftReport(self.served.name, self.served.version, rows, features, self.settings)

    def _status(self, psi: float | None) -> str:
        if psi is None or math.isnan(psi):
            return "insufficient_data"
        if psi >= self.settings.alert:
            return "alert"
        return "warn" if psi >= self.settings.warn else "ok"


class DriftMonitor(InferenceHook):
    """Keeps a window per served bundle model (attached as it loads) and scores it on request."""

    def __init__(self, settings: Drift) -> None:
        self.settings = settings

    def attach(self, served: ServedModel) -> None:
        """Registry load hook: a new version starts an empty window."""
        if isinstance(served.model, BundleModel) and served.model.metadata.statistics:
            served.attachments[WINDOW] = DriftWindow(served, self.settings)

    def after(self, request: InferenceRequest, result: Inference | None, error: ServingError | None) -> None:
        if result is not None and request.purpose == "predict":  # an explanation's rows were, or will be, predicted too
            window = result.served.attachments.get(WINDOW)
            if isinstance(window, DriftWindow):
                window.add(result.inputs)

    def recent_records(self, served: ServedModel, limit: int) -> list[dict[str, Any]]:
        window = served.attachments.get(WINDOW)
        return window.recent_records(limit) if isinstance(window, DriftWindow) else []

    def report(self, served: ServedModel) -> DriftReport | None:
        window = served.attachments.get(WINDOW)
        return window.report() if isinstance(window, DriftWindow) else None

    def publish(self, gauge: Gauge, served: Sequence[ServedModel]) -> None:
        """Set the per-feature PSI gauge (before a scrape); features without a score yet are left out."""
        for model in served:
            report = self.report(model)
            for feature in report.features if report is not None else ():
                if feature.psi is not None:
                    gauge.labels(model.name, feature.name).set(feature.psi)


def drift_router(drift: DriftMonitor, dataplane: DataPlane) -> APIRouter:
    """GET /api/models/{name}/drift: PSI per feature over the recent window."""
    router = APIRouter(prefix=paths.NATIVE_MODELS, tags=["models"])

    @router.get("/{name}/drift", summary="Input drift against the training data: PSI per feature over the recent window")
    async def get_drift(name: str) -> Response:
        served = dataplane.resolve(name)
        report = await asyncio.to_thread(drift.report, served)
        if report is None:
            raise ServingError(404, "no_drift_reference", f"model {name!r} has no training statistics to compare with")
        return json_response(report.as_dict(), headers=model_headers(served))

    return router


def drift_status(drift: DriftMonitor) -> Callable[[ServedModel], str | None]:
    """A model's drift status for its detail page and answer (None without training statistics)."""

    def status(served: ServedModel) -> str | None:
        report = drift.report(served)
        return report.status if report is not None else None

    return status
