"""What one answered inference is to everything that records it: the prediction log's lines and the inference events
are built from one `InferenceRecord`, so they never disagree on an id, a version or a time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sealserve.serve.request.dataplane import Inference, InferenceRequest
from sealserve.serve.request.paths import Protocol


@dataclass(frozen=True)
class InferenceRecord:
    """Small on purpose: it is built on the request path and queued, so it holds names and times, never the data."""

    request_id: str
    model: str
    version: str
    protocol: Protocol
    received: float  # seconds since the epoch: when the data plane took the request …
    answered: float  # … and when it was answered
    features: tuple[str, ...]  # the model's inputs in order (what a row given as a list means)

    @classmethod
    def of(cls, request: InferenceRequest, result: Inference, answered: float) -> InferenceRecord:
        served = result.served
        return cls(
            request.request_id or uuid.uuid4().hex,
            served.name,
            served.version,
            request.protocol,
            answered - result.seconds,
            answered,
            result.interface.names,
        )

    def fields(self) -> dict[str, Any]:
        """The fields every record of this inference starts with."""
        return {
            "time": timestamp(self.answered),
            "request_id": self.request_id,
            "model": self.model,
            "version": self.version,
            "protocol": self.protocol.value,
        }


def timestamp(at: float) -> str:
    """RFC 3339 in UTC, to the millisecond."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
