"""How the config file's `observability.tracing` and the standard OTEL_* variables decide whether and where spans go."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from sealserve.errors import ConfigError
from sealserve.serve.config import Tracing
from sealserve.serve.observability.tracing import trace_settings

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}


def test_off_without_an_endpoint_or_when_disabled() -> None:
    assert trace_settings(Tracing(), {}) is None
    assert trace_settings(Tracing(endpoint="http://collector:4318"), {"OTEL_SDK_DISABLED": "TRUE"}) is None
    assert trace_settings(Tracing(), {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert trace_settings(Tracing(), {**ENDPOINT, "OTEL_SDK_DISABLED": "false"}) is not None


def test_http_gets_the_traces_path_and_grpc_keeps_the_address() -> None:
    http = trace_settings(Tracing(), ENDPOINT)
    assert http is not None
    assert (http.endpoint, http.protocol) == ("http://collector:4318/v1/traces", "http/protobuf")
    grpc = trace_settings(Tracing(endpoint="http://collector:4317", protocol="grpc"), {})
    assert grpc is not None
    assert (grpc.endpoint, grpc.protocol) == ("http://collector:4317", "grpc")
    exact = trace_settings(Tracing(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example/otlp"})
    assert exact is not None
    assert exact.endpoint == "https://traces.example/otlp"


def test_the_environment_overrides_the_file() -> None:
    config = Tracing(
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
    assert isinstance(settings.sampler, ParentBased)
    assert "0.25" in settings.sampler.get_description()


def test_the_ratio_defaults_to_everything() -> None:
    settings = trace_settings(Tracing(sampler="traceidratio"), ENDPOINT)
    assert settings is not None
    assert isinstance(settings.sampler, TraceIdRatioBased)
    assert settings.sampler.rate == 1.0


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
        trace_settings(Tracing(), {**ENDPOINT, **variables})
