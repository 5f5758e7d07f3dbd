"""What a bundle model may opt into in the service config: a prediction log, inference events, a candidate version
(docs/rollout.md). Part of serve's shared ground with config.py, which names them in each model's entry."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PredictionLog(BaseModel):
    """Opt-in per model: every (sampled) prediction's inputs and outputs to JSON Lines, written off the request path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    max_bytes: int = Field(default=10 << 20, gt=0, description="Rotate the file past this size.")
    backups: int = Field(default=5, ge=0, description="Rotated files kept (path.1 … path.N).")
    sample: float = Field(default=1.0, gt=0, le=1, description="Share of requests logged.")
    queue: int = Field(default=10_000, gt=0, description="Records waiting for the writer; past it they are dropped and counted.")


class Events(BaseModel):
    """Opt-in per model: each answered request and its response as CloudEvents in KServe's inference logger format,
    POSTed to `url` by a background sender; the request path only enqueues (docs/observability.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://[^/?#\s]+", description="The sink: an HTTP endpoint, a broker, a Kafka bridge.")
    mode: Literal["all", "request", "response"] = Field(default="all", description="Which events are sent.")
    sample: float = Field(default=1.0, gt=0, le=1, description="Share of requests sent.")
    redact: tuple[str, ...] = Field(
        default=(), description="Fields whose values are replaced before an event leaves the process (record fields, V2 and Seldon inputs)."
    )
    queue: int = Field(default=1000, gt=0, description="Answered requests waiting for the sender; past it they are dropped and counted.")
    timeout: float = Field(default=5.0, gt=0, description="Seconds one event may take, retries included, before it is dropped and counted.")
    retries: int = Field(default=3, ge=0, le=10, description="Further attempts after a failed POST, with exponential backoff and jitter.")
    token_file: Path | None = Field(default=None, description="File holding a bearer token for the sink (re-read when it changes).")
    ca_file: Path | None = Field(default=None, description="CA bundle that verifies an https sink; without it, the system's.")
    source: str | None = Field(default=None, min_length=1, description="ce-source; without it, the server's URL.")


class Guardrails(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_rate: float = Field(default=0.02, ge=0, le=1, description="Share of canary requests the candidate may fail.")
    max_p99_ratio: float = Field(default=2.0, gt=0, description="Candidate p99 latency over production's, at most.")
    min_requests: int = Field(default=200, ge=1, description="Canary requests the candidate answers before the guardrails judge.")


class Candidate(BaseModel):
    """A version on trial beside the served one, verified like any load; shadow, canary and guardrails: docs/rollout.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(min_length=1, max_length=128, description="A version or an alias of the same model.")
    mode: Literal["shadow", "canary"] = "shadow"
    weight: float = Field(default=0.1, ge=0, le=1, description="canary: share of requests the candidate answers.")
    sample: float = Field(default=1.0, gt=0, le=1, description="shadow: share of requests the candidate also scores.")
    sticky_by: str | None = Field(default=None, pattern=r"^(header|field):[A-Za-z0-9_.-]{1,128}$", description="header:NAME or field:NAME")
    guardrails: Guardrails = Guardrails()
    allow_promote: bool = Field(
        default=False,
        description="The server may move the model's ref alias to the candidate's version (POST …/candidate/promote); its store "
        "credentials must be able to write. Otherwise promotion is `sealserve promote`.",
    )
