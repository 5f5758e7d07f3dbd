"""The web page's last-minute failure share: a window over cumulative counters, so only the last minute counts."""

from __future__ import annotations

from typing import Any, cast

from sealserve.serve.observability.failure_rate import FailureRate, FailureWindow
from sealserve.serve.observability.metrics import Metrics


class Counters:
    """Stands in for the request counters summed over workers."""

    def __init__(self) -> None:
        self.totals: dict[str, tuple[float, float]] = {}

    def request_totals(self) -> dict[str, tuple[float, float]]:
        return dict(self.totals)


def test_only_the_last_minute_counts_and_failing_needs_enough_requests() -> None:
    now = [0.0]
    counters = Counters()
    window = FailureWindow(cast(Metrics, counters), clock=lambda: now[0])
    window.sample()
    counters.totals = {"risk": (100.0, 90.0)}  # a bad first minute
    assert window.last_minute()["risk"] == FailureRate(100, 90)
    assert window.last_minute()["risk"].failing
    for second in range(5, 125, 5):
        now[0] = float(second)
        window.sample()
    counters.totals = {"risk": (130.0, 91.0)}  # then 30 requests, one of them a 5xx
    rate = window.last_minute()["risk"]
    assert rate == FailureRate(30, 1)
    assert not rate.failing
    counters.totals = {"risk": (160.0, 121.0)}  # 30 more, all 5xx: 31 of the last minute's 60
    assert window.last_minute()["risk"] == FailureRate(60, 31)
    assert window.last_minute()["risk"].failing
    assert FailureRate(19, 19).failing is False  # too few to call it
    assert FailureRate(20, 10).failing is True


def test_the_real_counters_add_5xx_answers_per_model() -> None:
    metrics = Metrics()
    for status, count in (("2xx", 3), ("4xx", 2), ("5xx", 4)):
        metrics.requests.labels("risk", "1.0.0", "native", status).inc(count)
    metrics.requests.labels("other", "1.0.0", "v2", "2xx").inc()
    totals: dict[str, Any] = metrics.request_totals()
    assert totals == {"risk": (9.0, 4.0), "other": (1.0, 0.0)}
