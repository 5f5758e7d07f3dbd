"""Open Inference Protocol V2 over REST: the seed's payload, metadata, both input layouts, every error path."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import pytest

from tests.protocols.conftest import EXAMPLE, MAX_BATCH

SEED_PAYLOAD = json.loads((EXAMPLE / "iris-input.json").read_text())
FLOWERS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def demo_inputs(size: Any = 7.5, count: Any = 3, color: Any = "BLUE", count_type: str = "INT64") -> list[dict[str, Any]]:
    return [
        {"name": "size", "shape": [1], "datatype": "FP64", "data": [size]},
        {"name": "count", "shape": [1], "datatype": count_type, "data": [count]},
        {"name": "color", "shape": [1], "datatype": "BYTES", "data": [color]},
    ]


def only_error(response: httpx.Response, status: int) -> str:
    """V2 errors are exactly {"error": "<message>"} with the status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    return str(body["error"])


def test_seed_004_payload_answers_like_kserve_with_the_model_version(http: httpx.Client) -> None:
    response = http.post("/v2/models/sklearn-iris/infer", json=SEED_PAYLOAD)
    assert response.status_code == 200, response.text
    assert response.json() == json.loads((EXAMPLE / "expected-output.json").read_text())
    assert response.headers["x-model-version"] == "1.0.0"


def test_the_versioned_path_serves_the_served_version_and_refuses_others(http: httpx.Client) -> None:
    assert http.post("/v2/models/sklearn-iris/versions/1.0.0/infer", json=SEED_PAYLOAD).json()["outputs"][0]["data"] == [1, 1]
    message = only_error(http.post("/v2/models/sklearn-iris/versions/9.9.9/infer", json=SEED_PAYLOAD), 404)
    assert "serving 1.0.0" in message


def test_server_metadata_health_and_model_readiness(http: httpx.Client) -> None:
    server = http.get("/v2").json()
    assert (server["name"], server["extensions"]) == ("sealserve", ["binary_tensor_data", "model_repository"])
    assert http.get("/v2/health/live").json() == {"live": True}
    ready = http.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    model = http.get("/v2/models/demo/ready")
    assert (model.status_code, model.json()) == (200, {"name": "demo", "ready": True, "version": "1.0.0"})
    assert http.get("/v2/models/demo/versions/1.0.0/ready").status_code == 200
    assert http.get("/v2/models/demo/versions/0.1/ready").status_code == 404
    assert only_error(http.get("/v2/models/nope/ready"), 404) == "no model named 'nope'"


def test_model_metadata_names_real_tensors_from_the_bundle(http: httpx.Client) -> None:
    response = http.get("/v2/models/demo")
    assert response.headers["x-model-version"] == "1.0.0"
    assert response.json() == {
        "name": "demo",
        "versions": ["1.0.0"],
        "platform": "sealserve_skops",
        "inputs": [
            {"name": "size", "datatype": "FP64", "shape": [-1]},
            {"name": "count", "datatype": "INT64", "shape": [-1]},
            {"name": "color", "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ],
    }
    assert http.get("/v2/models/demo/versions/1.0.0").json()["versions"] == ["1.0.0"]
    assert only_error(http.get("/v2/models/demo/versions/2.0.0"), 404)


def test_one_tensor_per_feature_with_selected_outputs_and_the_id_echoed(http: httpx.Client) -> None:
    body = {
        "id": "request-7",
        "inputs": [
            {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["BLUE", "RED"]},
            {"name": "size", "shape": [2, 1], "datatype": "FP32", "data": [[7.5], [1.0]]},
            {"name": "count", "shape": [2], "datatype": "FP32", "data": [3.0, 4.0]},
        ],
        "outputs": [{"name": "label"}, {"name": "predict_proba"}, {"name": "predict"}],
    }
    result = http.post("/v2/models/demo/infer", json=body).json()
    assert (result["model_name"], result["model_version"], result["id"]) == ("demo", "1.0.0", "request-7")
    outputs = {output["name"]: output for output in result["outputs"]}
    assert [output["name"] for output in result["outputs"]] == ["label", "predict_proba", "predict"]
    assert outputs["label"] == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["large", "small"]}
    assert outputs["predict"]["data"] == [1, 0]
    probabilities = outputs["predict_proba"]
    assert probabilities["shape"] == [2, 2]
    assert len(probabilities["data"]) == 4
    assert probabilities["data"][1] > 0.5 > probabilities["data"][3]


def test_a_custom_class_model_answers_over_v2_too(http: httpx.Client) -> None:
    inputs = [
        {"name": "body_mass_index", "shape": [1], "datatype": "INT32", "data": [30]},
        {"name": "general_health", "shape": [1], "datatype": "BYTES", "data": ["GOOD"]},
    ]
    result = http.post("/v2/models/threshold_risk/infer", json={"inputs": inputs}).json()
    assert result["model_version"] == "0.1.0"
    assert [(output["name"], output["datatype"]) for output in result["outputs"]] == [("risk_score", "FP64"), ("high_risk", "BOOL")]
    assert result["outputs"][1]["data"] == [False]


def test_binary_tensor_extension_is_accepted(http: httpx.Client) -> None:
    flowers = struct.pack("<8f", *(value for row in FLOWERS for value in row))
    header = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(flowers)}}]}
    ).encode()
    response = http.post(
        "/v2/models/sklearn-iris/infer",
        content=header + flowers,
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
    )
    assert response.json()["outputs"][0]["data"] == [1, 1]
    blue = b"BLUE"
    header = json.dumps(
        {"inputs": [*demo_inputs()[:2], {"name": "color", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]}
    ).encode()
    response = http.post(
        "/v2/models/demo/infer", content=header + struct.pack("<I", 4) + blue, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.json()["outputs"][0]["data"] == [1]
    header = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}).encode()
    too_short = http.post(
        "/v2/models/sklearn-iris/infer", content=header + flowers[:16], headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert "needs 32 bytes, got 16" in only_error(too_short, 400)
    bad_header = http.post("/v2/models/sklearn-iris/infer", content=header, headers={"Inference-Header-Content-Length": "9999"})
    assert "Inference-Header-Content-Length" in only_error(bad_header, 400)


INFINITY_BODY = json.dumps({"inputs": demo_inputs(size=1.0)}).replace("1.0", "Infinity").encode()
ERRORS: list[tuple[str, str, Any, int, str]] = [
    ("unknown model", "nope", {"inputs": demo_inputs()}, 404, "no model named 'nope'"),
    ("bad JSON", "demo", b'{"inputs": [', 400, "not valid JSON"),
    ("no inputs key", "demo", {"outputs": []}, 400, "inputs: Field required"),
    ("no inputs", "demo", {"inputs": []}, 400, "missing input"),
    ("missing feature", "demo", {"inputs": demo_inputs()[:2]}, 400, "missing input 'color'"),
    (
        "unknown input",
        "demo",
        {"inputs": [*demo_inputs(), {"name": "weight", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        400,
        "unknown input 'weight'",
    ),
    ("no data", "demo", {"inputs": [{"name": "size", "shape": [1], "datatype": "FP64"}, *demo_inputs()[1:]]}, 400, "has no data"),
    (
        "wrong width",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]},
        400,
        "expected [N, 4]",
    ),
    (
        "one-dimensional matrix",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
        400,
        "expected [N, 4]",
    ),
    (
        "count mismatch",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": FLOWERS[0]}]},
        400,
        "holds 8 values, but 4",
    ),
    (
        "negative shape",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "FP32", "data": FLOWERS[0]}]},
        400,
        "negative dimension",
    ),
    (
        "ragged nesting",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [FLOWERS[0], 1, 2, 3, 4]}]},
        400,
        "mixes",
    ),
    (
        "rows differ",
        "demo",
        {"inputs": [{**demo_inputs()[0], "shape": [2], "data": [1.0, 2.0]}, *demo_inputs()[1:]]},
        400,
        "has 1 rows; the other inputs have 2",
    ),
    ("per-feature shape", "demo", {"inputs": [{**demo_inputs()[0], "shape": [1, 1, 1]}, *demo_inputs()[1:]]}, 400, "is [N] or [N, 1]"),
    (
        "wrong datatype",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]},
        400,
        "has datatype BYTES",
    ),
    (
        "number for a category",
        "demo",
        {"inputs": [*demo_inputs()[:2], {"name": "color", "shape": [1], "datatype": "INT64", "data": [2]}]},
        400,
        "needs BYTES",
    ),
    (
        "unknown datatype",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": FLOWERS[0]}]},
        400,
        "unsupported datatype 'FP99'",
    ),
    (
        "string in FP32",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [6.8, "2.8", 4.8, 1.4]}]},
        400,
        "'sepal_width': Input should be a valid number",
    ),
    (
        "NaN",
        "sklearn-iris",
        b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [NaN, 2.8, 4.8, 1.4]}]}',
        400,
        "row 0, 'sepal_length': Input should be a finite number",
    ),
    (
        "Infinity",
        "demo",
        INFINITY_BODY,
        400,
        "finite number",
    ),
    (
        "out of range",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [68.0, 2.8, 4.8, 1.4]}]},
        400,
        "less than or equal to 30",
    ),
    ("unknown category", "demo", {"inputs": demo_inputs(color="PINK")}, 400, "'color': Input should be 'RED', 'GREEN' or 'BLUE'"),
    ("fractional integer", "demo", {"inputs": demo_inputs(count=2.5, count_type="FP32")}, 400, "'count': Input should be a valid integer"),
    ("unknown output", "demo", {"inputs": demo_inputs(), "outputs": [{"name": "proba"}]}, 400, "unknown output 'proba'"),
    ("empty batch", "sklearn-iris", {"inputs": [{"name": "x", "shape": [0, 4], "datatype": "FP32", "data": []}]}, 400, "no rows"),
    (
        "batch too large",
        "sklearn-iris",
        {"inputs": [{"name": "x", "shape": [MAX_BATCH + 1, 4], "datatype": "FP32", "data": FLOWERS[0] * (MAX_BATCH + 1)}]},
        413,
        "exceeds max_batch_size",
    ),
]


@pytest.mark.parametrize(("model", "body", "status", "fragment"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_errors_are_v2_shaped_with_the_right_status(http: httpx.Client, model: str, body: Any, status: int, fragment: str) -> None:
    response = (
        http.post(f"/v2/models/{model}/infer", content=body)
        if isinstance(body, bytes)
        else http.post(f"/v2/models/{model}/infer", json=body)
    )
    assert fragment in only_error(response, status)


def test_a_non_json_content_type_is_415(http: httpx.Client) -> None:
    response = http.post("/v2/models/demo/infer", content=b"inputs", headers={"Content-Type": "text/plain"})
    assert "expected application/json" in only_error(response, 415)


def test_whole_floats_reach_integer_features_from_float_tensors(http: httpx.Client) -> None:
    response = http.post("/v2/models/demo/infer", json={"inputs": demo_inputs(count=3.0, count_type="FP32")})
    assert response.json()["outputs"][0]["data"] == [1]


def test_repository_index_and_load(http: httpx.Client) -> None:
    index = http.post("/v2/repository/index").json()
    assert {"name": "demo", "version": "1.0.0", "state": "READY"} in index
    assert {entry["name"] for entry in index} == {"demo", "sklearn-iris", "threshold_risk", "weather"}
    assert len(http.post("/v2/repository/index", json={"ready": True}).json()) == 4
    loaded = http.post("/v2/repository/models/demo/load")
    assert (loaded.status_code, loaded.json()) == (200, {"name": "demo", "version": "1.0.0"})
    assert only_error(http.post("/v2/repository/models/nope/load"), 404)


def test_repository_unload_stops_serving_until_load(http: httpx.Client) -> None:
    unloaded = http.post("/v2/repository/models/weather/unload")
    assert (unloaded.status_code, unloaded.json()) == (200, {"name": "weather", "state": "UNAVAILABLE"})
    assert http.get("/v2/models/weather/ready").status_code != 200
    assert http.get("/v2/health/ready").status_code == 200  # an explicit unload does not make the server unready
    assert any(e["name"] == "weather" and e["state"] == "UNAVAILABLE" for e in http.post("/v2/repository/index").json())
    assert http.post("/v2/repository/models/weather/load").status_code == 200
    assert http.get("/v2/models/weather/ready").status_code == 200


def test_a_failing_model_is_a_generic_500_that_leaks_nothing(http: httpx.Client) -> None:
    inputs = [
        {"name": "body_mass_index", "shape": [1], "datatype": "INT64", "data": [59]},
        {"name": "general_health", "shape": [1], "datatype": "BYTES", "data": ["GOOD"]},
    ]
    response = http.post("/v2/models/threshold_risk/infer", json={"inputs": inputs})
    assert only_error(response, 500) == "the model could not make a prediction"
