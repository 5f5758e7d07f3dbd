"""One model's candidate in one worker (a trial): its settings, the loaded version, the comparison, the canary's counts;
how a candidate ended; what the shadow queue keeps of a request."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Sequence, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sealserve.runtime.answers import Predictions
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.model_options import Candidate
from sealserve.serve.request.dataplane import Batch, Inference, InferenceRequest, Outputs
from sealserve.serve.rollout.comparison import WINDOW, Comparison
from sealserve.serve.rollout.routing import Chooser
from sealserve.serve.rollout.shadow import ShadowRunner


@dataclass(frozen=True)
class Ended:
    """How a candidate ended: aborted (by an admin or a guardrail) or promoted (production now serves its version)."""

    version: str | None
    outcome: str  # "aborted" | "promoted"
    reason: str
    by: str
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "outcome": self.outcome, "reason": self.reason, "by": self.by, "at": self.at}


class Trial:
    """One model's candidate in this worker: its settings, the loaded version, the comparison and the canary counts."""

    def __init__(self, key: str, config: Candidate, by: str) -> None:
        self.key, self.config, self.by = key, config, by
        self.set_at = datetime.now(UTC).isoformat()
        self.served: ServedModel | None = None
        self.status = "loading"  # loading | active | failed
        self.error: str | None = None
        self.comparison = Comparison()
        self.chooser = Chooser(key, config.weight, config.sticky_by)
        self.shadow: ShadowRunner | None = None
        self.canary_requests = self.canary_errors = 0
        self.canary_seconds: deque[float] = deque(maxlen=WINDOW)
        self.production_seconds: deque[float] = deque(maxlen=WINDOW)
        self._sample = random.Random()  # noqa: S311 - sampling, not cryptography
        self.lock = threading.Lock()
        self.same_inputs: dict[str, bool] = {}  # by production version: its validated inputs are valid for the candidate

    def sampled(self) -> bool:
        return self.config.sample >= 1.0 or self._sample.random() < self.config.sample

    def describe(self) -> dict[str, Any]:
        served, config = self.served, self.config
        rate = self.canary_errors / self.canary_requests if self.canary_requests else None
        canary = {"requests": self.canary_requests, "errors": self.canary_errors, "error_rate": rate}
        return {
            **config.model_dump(mode="json"),
            "status": self.status,
            "error": self.error,
            "version": served.version if served is not None else None,
            "signer": served.signer if served is not None else None,
            "digest": served.digest if served is not None else None,
            "set_at": self.set_at,
            "set_by": self.by,
            "shadow_queue": self.shadow.waiting if self.shadow is not None else None,
            "canary": canary,
        }


Queued = tuple[Batch | None, Any, InferenceRequest | None]  # inputs (None: decode again), production's answer, the request


def packed(trial: Trial, request: InferenceRequest, result: Inference) -> Queued:
    """What the shadow queue keeps of a request: few objects the cyclic collector tracks, since queued items live long
    enough to reach its oldest generation (each full collection walks the whole heap: hundreds of ms in a server)."""
    assert trial.served is not None
    same = trial.same_inputs.get(result.served.version)
    if same is None:
        same = trial.same_inputs[result.served.version] = trial.served.takes_inputs_of(result.served)
    outputs = result.outputs
    answer = (outputs.classes, outputs.values, outputs.probabilities, outputs.scores) if isinstance(outputs, Predictions) else outputs
    return (result.inputs, answer, None) if same else (None, answer, request)


def unpacked(answer: Any) -> Outputs:
    return Predictions(*answer) if isinstance(answer, tuple) else answer


def per_part(outputs: list[Outputs], parts: Sequence[Sized]) -> list[Outputs]:
    """Each part's rows of a call's outputs: as they are when there is one per part, else sliced from the one answer."""
    if len(outputs) == len(parts):
        return outputs
    [whole], start, pieces = outputs, 0, []
    for part in parts:
        pieces.append(whole[start : start + len(part)])
        start += len(part)
    return pieces


def joined(outputs: list[Outputs]) -> Outputs | None:
    """Several requests' outputs as one, row for row; None when they cannot be (answers of different versions)."""
    if all(isinstance(output, Predictions) for output in outputs):
        predictions = cast(list[Predictions], outputs)
        if not predictions or any(part.classes is not predictions[0].classes for part in predictions):
            return None
        return Predictions.concat(predictions)
    if any(isinstance(output, Predictions) for output in outputs):
        return None
    return [row for output in cast(list[list[Any]], outputs) for row in output]
