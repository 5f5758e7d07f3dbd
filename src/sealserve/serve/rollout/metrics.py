"""The rollout's Prometheus series, in the service's registry (summed over workers like every other series).

Labels are configured model names and fixed sets (roles, abort causes), so clients cannot create series.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

ROLES = ("production", "shadow", "canary", "dropped", "shadow_error", "canary_error")


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "sealserve_candidate_requests",
            "Requests of models with a candidate, by role: production answered, shadow (the candidate also scored it), canary "
            "(the candidate answered), dropped (a full shadow queue), shadow_error and canary_error (the candidate failed).",
            ("model", "role"),
            registry=registry,
        )
        self.aborts = Counter(
            "sealserve_candidate_aborts", "Candidates aborted, by guardrail or admin.", ("model", "by"), registry=registry
        )
        self.agreement = Gauge(
            "sealserve_candidate_agreement_ratio",
            "Share of recent rows where the candidate's answer equals production's (shadow), over every worker.",
            ("model",),
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._children: dict[tuple[str, str], Any] = {}

    def counted(self, model: str, role: str, count: int = 1) -> None:
        child = self._children.get((model, role))
        if child is None:
            child = self._children[(model, role)] = self.requests.labels(model, role)
        child.inc(count)

    def aborted(self, model: str, by: str) -> None:
        self.aborts.labels(model, by).inc()
