"""How the config file's `observability.tracing` and the standard OTEL_* variables decide whether and where spans go."""

from __future__ import annotations

import random

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from sealserve.errors import ConfigError
from sealserve.serve.config import Tracing as TracingConfig
from sealserve.serve.observability.tracing.settings import TraceSettings, sampler_of, trace_settings
from sealserve.serve.observability.tracing.spans import Tracing

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}


def test_off_without_an_endpoint_or_when_disabled() -> None:
    assert trace_settings(TracingConfig(), {}) is None
    assert trace_settings(TracingConfig(endpoint="http://collector:4318"), {"OTEL_SDK_DISABLED": "TRUE"}) is None
    assert trace_settings(TracingConfig(), {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert trace_settings(TracingConfig(), {**ENDPOINT, "OTEL_SDK_DISABLED": "false"}) is not None


def test_http_gets_the_traces_path_and_grpc_keeps_the_address() -> None:
    http = trace_settings(TracingConfig(), ENDPOINT)
    assert http is not None
    assert (http.endpoint, http.protocol) == ("http://collector:4318/v1/traces", "http/protobuf")
    grpc = trace_settings(TracingConfig(endpoint="http://collector:4317", protocol="grpc"), {})
    assert grpc is not None
    assert (grpc.endpoint, grpc.protocol) == ("http://collector:4317", "grpc")
    exact = trace_settings(TracingConfig(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example/otlp"})
    assert exact is not None
    assert exact.endpoint == "https://traces.example/otlp"


def test_the_environment_overrides_the_file() -> None:
    config = TracingConfig(
        endpoint="http://file:4318",
        service_name="from-file",
        sampler="always_on",
        resource_attributes={"team": "file", "region": "eu"},
    )
    settings = trace_settings(
        config,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_SERVICE_NAME": "from-env",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_RESOURCE_ATTRIBUTES": "team=ml%2Cops, service.name=ignored",
        },
    )
    assert settings is not None
    assert (settings.endpoint, settings.protocol) == ("http://env:4317", "grpc")
    assert settings.resource == {"service.name": "from-env", "team": "ml,ops", "region": "eu"}
    assert isinstance(settings.sampling.sampler, ParentBased)
    assert "0.25" in settings.sampling.sampler.get_description()


def test_the_ratio_defaults_to_everything() -> None:
    settings = trace_settings(TracingConfig(sampler="traceidratio"), ENDPOINT)
    assert settings is not None
    assert isinstance(settings.sampling.sampler, TraceIdRatioBased)
    assert settings.sampling.sampler.rate == 1.0


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "unknown trace sampler"),
        ({"OTEL_TRACES_SAMPLER_ARG": "half"}, "must be a number"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "between 0 and 1"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "is not one of"),
    ],
)
def test_a_wrong_variable_stops_start_up(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        trace_settings(TracingConfig(), {**ENDPOINT, **variables})


SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"]


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("ratio", [0.0, 0.01, 0.25, 1.0])
def test_the_decision_taken_before_the_sdk_is_the_sdks(name: str, ratio: float) -> None:
    """Requests the sampler drops never reach the SDK, so the shortcut must decide exactly as the SDK's sampler would."""
    sampling, draw = sampler_of(name, ratio), random.Random(7)
    kept = 0
    for index in range(3000):
        trace_id = draw.getrandbits(128) or 1
        parent, remote = Context(), None
        if index % 3:  # a remote parent, sampled or not
            remote = SpanContext(trace_id, draw.getrandbits(64) or 1, True, TraceFlags(index % 3 - 1))
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        expected = sampling.sampler.should_sample(parent, trace_id, "POST", SpanKind.SERVER).decision.is_sampled()
        assert sampling.keeps(trace_id, remote) is expected, (name, ratio, index)
        kept += expected
    assert 0 < kept < 3000 or name.endswith(("always_on", "always_off")) or ratio in (0.0, 1.0)


class Discard(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def test_a_kept_root_span_carries_the_trace_id_it_was_kept_for() -> None:
    tracing = Tracing(TraceSettings("http://127.0.0.1:9/v1/traces", "http/protobuf", sampler_of("traceidratio", 0.5)), Discard())
    try:
        started = [tracing.server_span("POST", {}) for _ in range(400)]
        kept = [item for item in started if item.span is not None]
        assert 100 < len(kept) < 300
        assert all(item.ids is None for item in started if item.span is None)  # a dropped root has no ids to log
        for item in kept:  # the ratio rule holds for the trace id kept; the span carries the ids its access line writes
            assert item.span is not None
            assert item.ids is not None
            assert (item.ids >> 64) & (1 << 64) - 1 < tracing.sampling.bound
            context = item.span.context
            assert (context.trace_id, context.span_id) == (item.ids >> 64, item.ids & (1 << 64) - 1)
    finally:
        tracing.close()
