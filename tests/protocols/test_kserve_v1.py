"""KServe V1: instances as feature lists or objects, predictions with the model version, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.protocols.conftest import DEMO_RECORD, MAX_BATCH

FLOWERS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


def test_lists_models_and_reports_readiness(http: httpx.Client) -> None:
    assert http.get("/v1/models").json() == {"models": ["demo", "sklearn-iris", "threshold_risk", "weather"]}
    status = http.get("/v1/models/sklearn-iris")
    assert (status.status_code, status.json()) == (200, {"name": "sklearn-iris", "ready": True, "version": "1.0.0"})
    assert error_of(http.get("/v1/models/nope"), 404) == "no model named 'nope'"


def test_feature_lists_predict_the_labels_the_bundle_declares(http: httpx.Client) -> None:
    """Issue 9: the iris classes 0, 1, 2 are packed with species names, so V1 answers the names, not the codes."""
    response = http.post("/v1/models/sklearn-iris:predict", json={"instances": FLOWERS})
    assert response.json() == {"predictions": ["versicolor", "versicolor"], "model_name": "sklearn-iris", "model_version": "1.0.0"}
    assert response.headers["x-model-version"] == "1.0.0"
    assert http.post("/v1/models/sklearn-iris:predict", json={"inputs": FLOWERS}).json()["predictions"] == ["versicolor"] * 2


def test_objects_and_lists_mix_in_one_batch(http: httpx.Client) -> None:
    instances = [[7.5, 3.0, "BLUE"], {"size": 1.0, "count": 4, "color": "RED"}, DEMO_RECORD]
    assert http.post("/v1/models/demo:predict", json={"instances": instances}).json()["predictions"] == ["large", "small", "large"]


def test_custom_class_models_answer_their_output_objects(http: httpx.Client) -> None:
    response = http.post("/v1/models/threshold_risk:predict", json={"instances": [{"body_mass_index": 30, "general_health": "GOOD"}]})
    assert response.json()["predictions"] == [{"risk_score": pytest.approx(0.4166666), "high_risk": False}]


ERRORS: list[tuple[str, str, Any, int, str]] = [
    ("unknown model", "nope", {"instances": FLOWERS}, 404, "no model named 'nope'"),
    ("bad JSON", "sklearn-iris", b'{"instances": [[6.8, ', 400, "not valid JSON"),
    ("no instances", "sklearn-iris", {"data": FLOWERS}, 400, 'missing input: the body needs "instances"'),
    ("instances not a list", "sklearn-iris", {"instances": {"a": 1}}, 400, "instances: Input should be a valid array"),
    ("empty", "sklearn-iris", {"instances": []}, 400, "no rows"),
    ("wrong length", "sklearn-iris", {"instances": [FLOWERS[0][:3]]}, 400, "instance 0 has 3 values; expected 4 values in the order"),
    ("scalar instance", "sklearn-iris", {"instances": [FLOWERS[0], 6.8]}, 400, "instance 1 is not a list"),
    ("NaN", "sklearn-iris", b'{"instances": [[NaN, 2.8, 4.8, 1.4]]}', 400, "instance 0, 'sepal_length': Input should be a finite number"),
    ("string number", "sklearn-iris", {"instances": [["6.8", 2.8, 4.8, 1.4]]}, 400, "Input should be a valid number"),
    ("unknown field", "demo", {"instances": [{**DEMO_RECORD, "weight": 1}]}, 400, "instance 0, 'weight': Extra inputs are not permitted"),
    ("missing field", "demo", {"instances": [{"size": 1.0, "count": 2}]}, 400, "instance 0, 'color': Field required"),
    ("unknown category", "demo", {"instances": [[7.5, 3, "PINK"]]}, 400, "'color': Input should be 'RED', 'GREEN' or 'BLUE'"),
    ("too many", "sklearn-iris", {"instances": [FLOWERS[0]] * (MAX_BATCH + 1)}, 413, "exceeds max_batch_size"),
]


@pytest.mark.parametrize(("model", "body", "status", "fragment"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_errors_are_kserve_shaped(http: httpx.Client, model: str, body: Any, status: int, fragment: str) -> None:
    url = f"/v1/models/{model}:predict"
    response = http.post(url, content=body) if isinstance(body, bytes) else http.post(url, json=body)
    assert fragment in error_of(response, status)
