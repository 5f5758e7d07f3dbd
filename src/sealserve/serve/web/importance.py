"""Global importance on the model page: mean |contribution| per feature over at most 200 of the drift window's recent
rows, by exact methods only, computed when a page asks and kept for 60 s, so a page view never runs an unbounded
explanation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.observability.drift import DriftMonitor
from sealserve.serve.request.explain.plane import Explanations

MAX_ROWS, CACHE_SECONDS = 200, 60.0
IMPORTANCE = "global_importance"


@dataclass(frozen=True)
class Importance:
    """One bar per feature, largest first (`width` relative to the largest), over `rows` recent rows."""

    rows: int
    method: str
    output: str
    bars: list[dict[str, Any]]
    computed: float


class GlobalImportance:
    def __init__(self, explanations: Explanations, drift: DriftMonitor, clock: Callable[[], float] = time.monotonic) -> None:
        self.explanations, self.drift, self.clock = explanations, drift, clock
        self._lock = threading.Lock()

    def of(self, served: ServedModel) -> Importance | None:
        """None without recent rows or an exact method; recomputed at most once per CACHE_SECONDS per model version."""
        with self._lock:
            cached = served.attachments.get(IMPORTANCE)
            if isinstance(cached, Importance) and self.clock() - cached.computed < CACHE_SECONDS:
                return cached
            records = self.drift.recent_records(served, MAX_ROWS)
            if not records:
                return None
            try:
                explainer = self.explanations.explainer(served)
            except ServingError:
                return None
            if explainer.exact is None:
                return None
            explained = explainer.explain(records)
            mean = np.abs(explained.contributions).mean(axis=(0, 1))
            largest = float(mean.max()) or 1.0
            order = np.argsort(-mean, kind="stable")
            bars = [{"name": explainer.names[i], "value": float(mean[i]), "width": float(mean[i]) / largest} for i in order]
            found = Importance(len(records), explained.method, explained.output, bars, self.clock())
            served.attachments[IMPORTANCE] = found
            return found
