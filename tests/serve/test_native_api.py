"""The native REST API: typed predictions, batches, and one precise error per kind of bad input."""

import json

import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import record

JSON = {"content-type": "application/json"}


def post(client: TestClient, path: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=raw, headers=headers or JSON)
    return response.status_code, response.json()


def test_prediction_names_model_and_version_and_decodes_labels(client: TestClient) -> None:
    status, body = post(client, "/api/models/demo/prediction", record())
    assert status == 200
    assert body["model_name"] == "demo"
    assert body["model_version"] == "1.0.0"
    output = body["output"]
    assert isinstance(output, dict)
    assert output["prediction"] == "large"
    assert set(output["probabilities"]) == {"small", "large"}
    assert abs(sum(output["probabilities"].values()) - 1.0) < 1e-9


def test_category_labels_map_to_the_codes_the_model_was_trained_on(client: TestClient) -> None:
    _, red = post(client, "/api/models/demo/prediction", record(size=5.0, color="RED"))
    _, blue = post(client, "/api/models/demo/prediction", record(size=5.0, color="BLUE"))
    assert red["output"]["prediction"] == "small"  # type: ignore[index]
    assert blue["output"]["prediction"] == "large"  # type: ignore[index]


def test_batch_returns_one_output_per_record_in_order(client: TestClient) -> None:
    status, body = post(client, "/api/models/demo/predictions", [record(size=1.0, color="RED"), record(size=9.0)])
    assert status == 200
    assert [o["prediction"] for o in body["outputs"]] == ["small", "large"]  # type: ignore[attr-defined]
    assert body["model_version"] == "1.0.0"


def test_batch_matches_single_predictions(client: TestClient) -> None:
    records = [record(size=float(s), color=c) for s, c in [(0.5, "RED"), (4.0, "GREEN"), (8.0, "BLUE")]]
    _, batch = post(client, "/api/models/demo/predictions", records)
    singles = [post(client, "/api/models/demo/prediction", r)[1]["output"] for r in records]
    assert batch["outputs"] == singles


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (record(size="7.5"), ["size"], "float_type"),
        (record(size=11.0), ["size"], "less_than_equal"),
        (record(count=2.5), ["count"], "int_type"),
        (record(color="PURPLE"), ["color"], "literal_error"),
        (record(extra=1), ["extra"], "extra_forbidden"),
        ({"size": 1.0, "count": 1}, ["color"], "missing"),
    ],
)
def test_schema_violations_are_422_with_field_paths(client: TestClient, body: dict[str, object], loc: list[str], kind: str) -> None:
    status, response = post(client, "/api/models/demo/prediction", body)
    assert status == 422
    error = response["error"]
    assert isinstance(error, dict)
    assert error["code"] == "validation_error"
    assert {"loc": loc, "type": kind} in [{"loc": d["loc"], "type": d["type"]} for d in error["details"]]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinity_are_refused(client: TestClient, literal: bytes) -> None:
    body = b'{"size": ' + literal + b', "count": 1, "color": "RED"}'
    status, response = post(client, "/api/models/demo/prediction", body)
    assert status == 422
    assert response["error"]["details"][0]["loc"] == ["size"]  # type: ignore[index]


def test_batch_errors_carry_the_record_index(client: TestClient) -> None:
    status, response = post(client, "/api/models/demo/predictions", [record(), record(color="PINK")])
    assert status == 422
    assert response["error"]["details"][0]["loc"] == [1, "color"]  # type: ignore[index]


def test_malformed_json_is_400(client: TestClient) -> None:
    status, response = post(client, "/api/models/demo/prediction", b'{"size": 1.0,')
    assert (status, response["error"]["code"]) == (400, "malformed_json")  # type: ignore[index]


def test_non_json_content_type_is_415_and_no_content_type_is_read_as_json(client: TestClient) -> None:
    status, response = post(client, "/api/models/demo/prediction", record(), headers={"content-type": "text/plain"})
    assert (status, response["error"]["code"]) == (415, "unsupported_media_type")  # type: ignore[index]
    form = client.post(
        "/api/models/demo/prediction", content=json.dumps(record()), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415  # curl -d without -H
    untyped = client.post("/api/models/demo/prediction", content=json.dumps(record()).encode())
    assert "content-type" not in untyped.request.headers
    assert untyped.status_code == 200, untyped.text


def test_body_over_the_limit_is_413_declared_or_streamed(client: TestClient) -> None:
    big = json.dumps(record(padding="x" * 5000)).encode()
    response = client.post("/api/models/demo/prediction", content=big, headers=JSON)
    assert response.status_code == 413
    streamed = client.post("/api/models/demo/prediction", content=iter([big[:3000], big[3000:]]), headers=JSON)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_batch_over_max_batch_size_is_413_and_empty_batch_is_422(client: TestClient) -> None:
    status, response = post(client, "/api/models/demo/predictions", [record()] * 6)
    assert (status, response["error"]["code"]) == (413, "batch_too_large")  # type: ignore[index]
    status, _ = post(client, "/api/models/demo/predictions", [])
    assert status == 422


def test_unknown_model_and_unknown_route_are_404_in_the_error_shape(client: TestClient) -> None:
    status, response = post(client, "/api/models/nope/prediction", record())
    assert (status, response["error"]["code"]) == (404, "model_not_found")  # type: ignore[index]
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_seed_shaped_class_model_is_served_with_its_configuration(client: TestClient) -> None:
    status, body = post(client, "/api/models/threshold_risk/prediction", {"body_mass_index": 40, "general_health": "GOOD"})
    assert status == 200
    assert body["model_version"] == "0.1.0"
    assert body["output"] == {"risk_score": pytest.approx((25 / 45) * 0.5 + 0.25), "high_risk": True}
    status, _ = post(client, "/api/models/threshold_risk/prediction", {"body_mass_index": 10, "general_health": "GOOD"})
    assert status == 422


@pytest.mark.parametrize("bmi", [58, 59])
def test_model_failures_are_500_without_internal_details(client: TestClient, bmi: int) -> None:
    response = client.post("/api/models/threshold_risk/prediction", json={"body_mass_index": bmi, "general_health": "GOOD"})
    assert response.status_code == 500
    text = response.text
    assert "secret" not in text
    assert "Traceback" not in text
    assert response.json()["error"]["code"] in {"model_error", "internal_error"}


def test_model_listing_and_detail_report_signer_digest_and_schemas(client: TestClient, workspace: object) -> None:
    listing = client.get("/api/models").json()["models"]
    assert {m["name"] for m in listing} == {"demo", "threshold_risk"}
    detail = client.get("/api/models/demo").json()
    assert detail["signer"] == "test-key"
    assert len(detail["digest"]) == 64
    assert detail["input_schema"]["properties"]["color"]["enum"] == ["RED", "GREEN", "BLUE"]
    assert detail["metadata"]["features"][0]["name"] == "size"
    assert client.get("/api/models/nope").status_code == 404


def test_health_endpoints_report_every_model(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200
    assert all(m["ready"] for m in ready.json()["models"])
    assert client.get("/api/health/startup").status_code == 200


def test_openapi_documents_each_model_with_its_own_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/api/models/demo/prediction"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DemoInput"}
    assert document["components"]["schemas"]["DemoInput"]["properties"]["count"]["type"] == "integer"
    assert "/api/models/threshold_risk/predictions" in document["paths"]
