"""Each model's share of server errors (5xx) over the last minute, summed over every worker, for the web page.

It reads the same request counters `/metrics` exports (every worker's files with `--workers N`), sampled every
few seconds, so a page served by one worker still counts the requests the others answered. 4xx answers are the
client's mistakes and do not count against the model.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sealserve.serve.observability.metrics import Metrics

SAMPLE_SECONDS = 5.0
WINDOW_SECONDS = 60.0
FAILING_SHARE = 0.5
FAILING_MIN_REQUESTS = 20
Totals = dict[str, tuple[float, float]]  # model → (requests, 5xx answers) since the service started


@dataclass(frozen=True)
class FailureRate:
    requests: int
    failures: int

    @property
    def share(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def failing(self) -> bool:
        """Half or more of at least FAILING_MIN_REQUESTS answers were server errors: not healthy, whatever loaded."""
        return self.requests >= FAILING_MIN_REQUESTS and self.share >= FAILING_SHARE


class FailureWindow:
    """Samples of the request counters; the last minute is the newest totals minus those of a minute ago."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics, self.clock = metrics, clock
        self._samples: deque[tuple[float, Totals]] = deque()

    def sample(self) -> None:
        now = self.clock()
        self._samples.append((now, self.metrics.request_totals()))
        while len(self._samples) > 1 and self._samples[1][0] <= now - WINDOW_SECONDS:
            self._samples.popleft()  # keep one sample at or before the window's start

    def last_minute(self) -> dict[str, FailureRate]:
        """Per model, requests and 5xx answers since the oldest kept sample (at most a minute and a sample ago)."""
        current = self.metrics.request_totals()
        base = self._samples[0][1] if self._samples else {}
        rates = {}
        for model, (requests, failures) in current.items():
            before = base.get(model, (0.0, 0.0))
            rates[model] = FailureRate(int(requests - before[0]), int(failures - before[1]))
        return rates

    async def run(self) -> None:
        """Sample until cancelled (the app's lifespan owns the task)."""
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(SAMPLE_SECONDS)
