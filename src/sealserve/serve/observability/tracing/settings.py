"""Whether spans are made and where they go: the config file's `observability.tracing`, overridden by the standard
OTEL_* variables; and the sampler's decision, taken without the SDK for requests it drops."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.trace import SpanContext

from sealserve.errors import ConfigError
from sealserve.serve.config import Tracing as TracingConfig
from sealserve.serve.observability.tracing.ids import LOW_64

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

PROTOCOLS = ("http/protobuf", "grpc")


@dataclass(frozen=True)
class TraceSettings:
    """Where spans go and which are kept, resolved from the config file and the environment."""

    endpoint: str  # the full traces URL for http/protobuf, the collector's address for grpc
    protocol: str
    sampling: Sampling
    resource: dict[str, str] = field(default_factory=dict)


def trace_settings(config: TracingConfig, environ: Mapping[str, str]) -> TraceSettings | None:
    """None (tracing off) without an endpoint, with OTEL_SDK_DISABLED=true or with OTEL_TRACES_EXPORTER=none."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or environ.get("OTEL_TRACES_EXPORTER", "").strip() == "none":
        return None
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or config.protocol).strip()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"OTLP protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not endpoint:
        base = (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or config.endpoint or "").strip()
        if not base:
            return None
        endpoint = f"{base.rstrip('/')}/v1/traces" if protocol == "http/protobuf" else base
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip() or config.sampler
    arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(arg) if arg else config.sampler_arg
    except ValueError:
        raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1, not {arg!r}") from None
    given = _attributes(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    resource = {"service.name": config.service_name, **config.resource_attributes, **given}
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        resource["service.name"] = environ["OTEL_SERVICE_NAME"].strip()
    return TraceSettings(endpoint, protocol, sampler_of(name, ratio), resource)


@dataclass(frozen=True)
class Sampling:
    """The sampler for the SDK, and the same decision taken without it for a request's server span, so that the
    requests it drops never build a span (tests/unit/test_tracing_settings.py checks that the two agree)."""

    sampler: Sampler
    parent_based: bool
    bound: int  # a trace is kept when its id's low 64 bits lie below: 0 keeps none, 2**64 all (TraceIdRatioBased's rule)

    def keeps(self, trace_id: int, parent: SpanContext | None) -> bool:
        if self.parent_based and parent is not None:
            return parent.trace_flags.sampled
        return trace_id & LOW_64 < self.bound

    def keeps_root(self, low: int) -> bool:
        """`keeps` for a trace this server starts, from its trace id's low 64 bits alone (drawn first: ids.py)."""
        return low < self.bound


def sampler_of(name: str, ratio: float | None) -> Sampling:
    """The OTEL_TRACES_SAMPLER values of the specification; the ratio samplers keep everything without an argument."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased

    if ratio is not None and not 0 <= ratio <= 1:
        raise ConfigError(f"the sampler's ratio must lie between 0 and 1, not {ratio}")
    by_ratio = TraceIdRatioBased(1.0 if ratio is None else ratio)
    every, none = LOW_64 + 1, 0
    samplers: dict[str, Sampling] = {
        "always_on": Sampling(ALWAYS_ON, False, every),
        "always_off": Sampling(ALWAYS_OFF, False, none),
        "traceidratio": Sampling(by_ratio, False, by_ratio.bound),
        "parentbased_always_on": Sampling(ParentBased(ALWAYS_ON), True, every),
        "parentbased_always_off": Sampling(ParentBased(ALWAYS_OFF), True, none),
        "parentbased_traceidratio": Sampling(ParentBased(by_ratio), True, by_ratio.bound),
    }
    if name not in samplers:
        raise ConfigError(f"unknown trace sampler {name!r}; one of {', '.join(samplers)}")
    return samplers[name]


def _attributes(text: str) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES: `key=value` pairs separated by commas, percent-encoded."""
    pairs = (item.partition("=") for item in text.split(",") if "=" in item)
    return {urllib.parse.unquote(key.strip()): urllib.parse.unquote(value.strip()) for key, _, value in pairs if key.strip()}
