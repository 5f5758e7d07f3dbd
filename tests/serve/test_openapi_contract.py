"""The OpenAPI document describes every fixed route from openapi_routes.py: no route is left with FastAPI's guesses
(a 200 of any JSON and a 422 nobody answers), no table entry names a route that does not exist, every answer has its
protocol's error shape, and every schema in it is valid JSON Schema. (tests/protocols/test_contract_fuzz.py checks
the same document against the real server's answers.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from sealserve.serve import create_app
from sealserve.serve.config import parse_config
from sealserve.serve.web.openapi_schemas import ROUTES
from tests.support.server import wait_until

ERROR_SHAPE = {"KServe V1": "ProtocolError", "Open Inference Protocol (V2)": "ProtocolError", "Seldon": "SeldonError"}
PROBES = {"ModelReadiness", "HealthReport", "V2Ready", "SeldonStatus"}
INFERENCE = {
    ("post", "/v1/models/{name}:predict"),
    ("post", "/v2/models/{name}/infer"),
    ("post", "/v2/models/{name}/versions/{version}/infer"),
    ("post", "/api/v1.0/predictions"),
    ("post", "/seldon/{namespace}/{name}/api/v1.0/predictions"),
}


@pytest.fixture(scope="module")
def document() -> Iterator[dict[str, Any]]:
    """Every optional router mounted (admin, the V2 repository), with a class model for the per-model paths."""
    config = parse_config(
        {
            "admin": {"enabled": True},
            "protocols": {"v2_repository": True},
            "models": [{"class_path": "tests.support.seed_model.ThresholdRiskModel"}],
        },
        {},
    )
    with TestClient(create_app(config)) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200)  # models load in the background
        yield client.get("/openapi.json").json()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for path, item in document["paths"].items() for method, operation in item.items()}


def per_model(path: str) -> bool:
    return (
        path.startswith("/api/models/")
        and path.endswith(("/prediction", "/predictions", "/explanation", "/explanations"))
        and "{" not in path
    )


def test_every_fixed_route_is_described_and_every_description_is_a_route(document: dict[str, Any]) -> None:
    documented = {key for key in operations(document) if not per_model(key[1])}
    assert documented == set(ROUTES)
    assert {path for _, path in operations(document) if per_model(path)} == {
        "/api/models/threshold_risk/prediction",
        "/api/models/threshold_risk/predictions",
    }


def test_no_answer_is_fastapis_guess(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    for key, operation in operations(document).items():
        for status, answer in operation["responses"].items():
            for media in answer.get("content", {}).values():
                assert media["schema"] != {}, (key, status)  # FastAPI's "any JSON" for a Response-returning endpoint


def test_errors_have_their_protocols_shape(document: dict[str, Any]) -> None:
    for (method, path), operation in operations(document).items():
        shape = ERROR_SHAPE.get(operation["tags"][0], "Error")
        for status, answer in operation["responses"].items():
            if int(status) < 400:
                continue
            named = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(answer)))
            if status == "503" and named <= PROBES:
                continue  # a probe's 503 is its usual body saying "not ready"
            assert shape in named, (method, path, status, named)


def test_routes_taking_a_name_document_404_and_inference_routes_every_refusal(document: dict[str, Any]) -> None:
    found = operations(document)
    for key, operation in found.items():
        if "{name}" in key[1]:
            assert "404" in operation["responses"], key
            assert operation["parameters"][0]["description"], key
    for key in INFERENCE:
        answers = set(found[key]["responses"])
        assert {"200", "400", "404", "408", "413", "415", "500", "503"} <= answers, key
        assert "422" not in answers, key  # the standard protocols answer schema violations with 400
        assert found[key]["requestBody"]["content"]["application/json"]["schema"]["$ref"], key
    native = found[("post", "/api/models/threshold_risk/predictions")]["responses"]
    assert {"400", "413", "415", "422", "503"} <= set(native)


def test_the_seldon_ping_documents_plain_text(document: dict[str, Any]) -> None:
    answer = operations(document)[("get", "/health/ping")]["responses"]["200"]
    assert answer["content"] == {"text/plain": {"schema": {"type": "string", "enum": ["pong"]}}}


def test_every_schema_is_valid_and_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert name
    references = {part.split('"')[0] for part in json.dumps(document).split('"$ref": "#/components/schemas/')[1:]}
    assert references <= set(schemas), references - set(schemas)
