"""Seldon protocol: seed 002's curl request, ndarray and tensor payloads, health, Seldon-shaped errors."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sealserve.serve import create_app, load_config
from tests.protocols.conftest import MAX_BATCH, Served
from tests.support.bundles import Workspace
from tests.support.server import wait_until

SEED_002_BODY = '{"meta": { "tags": {}}, "data": {"names":["temperature"], "ndarray":["55"]}}'


def status_of(response: httpx.Response, code: int) -> str:
    """Seldon errors: {"status": {"code", "info", "reason", "status": "FAILURE"}} with the HTTP status."""
    assert response.status_code == code, response.text
    status = response.json()["status"]
    assert status["code"] == code
    assert status["status"] == "FAILURE"
    assert status["reason"]
    return str(status["info"])


def test_seed_002_curl_request_gets_the_weather_state(served: Served) -> None:
    """The seed's exact curl command, against the Seldon ingress path of the `weather` deployment."""
    route = f"{served.url}/seldon/seldon/weather/api/v1.0/predictions"
    command = f"curl -s -X POST -H 'Content-Type: application/json' -d '{SEED_002_BODY}' {route} --connect-timeout 300 --max-time 300"
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True)
    answer = json.loads(result.stdout)
    assert answer["data"]["names"] == ["cold", "mild", "hot"]
    [probabilities] = answer["data"]["ndarray"]
    assert max(range(3), key=probabilities.__getitem__) == 1  # 55 °F is mild
    assert answer["meta"] == {"tags": {"model_name": "weather", "model_version": "1.0.0"}, "requestPath": {"weather": "1.0.0"}}


def test_ndarray_with_names_in_any_order_and_the_puid_echoed(http: httpx.Client) -> None:
    body = {
        "meta": {"puid": "p-1", "tags": {"team": "ml"}},
        "data": {"names": ["color", "size", "count"], "ndarray": [["BLUE", 7.5, 3], ["RED", 1.0, 4]]},
    }
    answer = http.post("/seldon/default/demo/api/v1.0/predictions", json=body).json()
    assert answer["data"]["names"] == ["small", "large"]
    assert [row.index(max(row)) for row in answer["data"]["ndarray"]] == [1, 0]
    assert answer["meta"] == {
        "puid": "p-1",
        "tags": {"team": "ml", "model_name": "demo", "model_version": "1.0.0"},
        "requestPath": {"demo": "1.0.0"},
    }


def test_tensor_in_tensor_out_for_numbers_and_labels_as_an_ndarray(http: httpx.Client) -> None:
    body = {"data": {"tensor": {"shape": [2, 4], "values": [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]}}}
    answer = http.post("/seldon/default/sklearn-iris/api/v1.0/predictions", json=body).json()
    assert answer["data"] == {"names": [], "ndarray": ["versicolor", "versicolor"]}  # a tensor holds numbers only
    probabilities = http.post(
        "/seldon/default/weather/api/v1.0/predictions", json={"data": {"tensor": {"shape": [1], "values": [90.0]}}}
    ).json()
    assert probabilities["data"]["tensor"]["shape"] == [1, 3]


ERRORS: list[tuple[str, str, Any, int, str]] = [
    ("unknown model", "nope", {"data": {"ndarray": [[1.0]]}}, 404, "no model named 'nope'"),
    ("bad JSON", "weather", b'{"data": ', 400, "not valid JSON"),
    ("no data", "weather", {"meta": {}}, 400, "missing input"),
    (
        "both forms",
        "weather",
        {"data": {"ndarray": [[50]], "tensor": {"shape": [1], "values": [50]}}},
        400,
        "exactly one of ndarray or tensor",
    ),
    ("unknown form", "weather", {"data": {"strData": "50"}}, 400, "Extra inputs are not permitted"),
    ("wrong row length", "sklearn-iris", {"data": {"ndarray": [[6.8, 2.8, 4.8]]}}, 400, "row 0 has 3 values; expected 4"),
    ("ragged ndarray", "sklearn-iris", {"data": {"ndarray": [[6.8, 2.8, 4.8, 1.4], 5.0]}}, 400, "mixes rows and values"),
    ("tensor shape", "sklearn-iris", {"data": {"tensor": {"shape": [2, 4], "values": [1.0] * 7}}}, 400, "holds 8 values, but 7"),
    ("unknown name", "weather", {"data": {"names": ["temp"], "ndarray": [[50]]}}, 400, "unknown input 'temp'"),
    ("missing name", "demo", {"data": {"names": ["size", "count"], "ndarray": [[1.0, 2]]}}, 400, "missing input 'color'"),
    (
        "NaN string",
        "weather",
        {"data": {"names": ["temperature"], "ndarray": ["NaN"]}},
        400,
        "'temperature': Input should be a finite number",
    ),
    ("not a number", "weather", {"data": {"ndarray": [["warm"]]}}, 400, "'temperature': Input should be a valid number"),
    ("out of range", "weather", {"data": {"ndarray": [[500]]}}, 400, "less than or equal to 140"),
    ("too many", "weather", {"data": {"ndarray": [[50]] * (MAX_BATCH + 1)}}, 413, "exceeds max_batch_size"),
]


@pytest.mark.parametrize(("model", "body", "code", "fragment"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_errors_are_seldon_shaped(http: httpx.Client, model: str, body: Any, code: int, fragment: str) -> None:
    url = f"/seldon/default/{model}/api/v1.0/predictions"
    response = http.post(url, content=body) if isinstance(body, bytes) else http.post(url, json=body)
    assert fragment in status_of(response, code)


def test_the_plain_path_needs_a_single_model_server(http: httpx.Client) -> None:
    assert "serves several models" in status_of(http.post("/api/v1.0/predictions", json={"data": {"ndarray": [[50]]}}), 404)
    assert http.get("/health/ping").text == "pong"
    assert http.get("/health/status").json()["status"]["status"] == "SUCCESS"


@pytest.fixture(scope="module")
def single(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    config = workspace.config(tmp_path_factory.mktemp("seldon") / "service.yaml", {"name": "weather"})
    with TestClient(create_app(load_config(config)), raise_server_exceptions=False) as client:
        wait_until(lambda: client.get("/health/status").status_code == 200, timeout=30)
        yield client


def test_a_single_model_server_answers_the_plain_seldon_path(single: TestClient) -> None:
    answer = single.post("/api/v1.0/predictions", content=SEED_002_BODY, headers={"Content-Type": "application/json"}).json()
    assert answer["data"]["names"] == ["cold", "mild", "hot"]
    assert answer["meta"]["requestPath"] == {"weather": "1.0.0"}
    status = single.get("/health/status").json()
    assert status == {"status": {"code": 200, "status": "SUCCESS", "info": "ready"}, "meta": {"requestPath": {"weather": "1.0.0"}}}


def test_seldon_paths_are_in_the_openapi_contract(single: TestClient) -> None:
    paths = single.get("/openapi.json").json()["paths"]
    assert {"/api/v1.0/predictions", "/health/ping", "/v1/models/{name}:predict", "/v2/models/{name}/infer"} <= set(paths)
    assert not any(path.startswith("/v2/repository") for path in paths)  # the repository extension is off by default
    assert single.post("/v2/repository/index").status_code == 404
