"""Metrics, request ids, access logs and drift, observed from outside as an operator would: /metrics, headers, log lines."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sealserve.serve import create_app, load_config
from tests.support.bundles import COLORS, Workspace, training_data
from tests.support.server import free_port, wait_until

DEMO = {"size": 7.5, "count": 3, "color": "BLUE"}
LABEL_OF_CODE = {code: label for label, code in COLORS.items()}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, int]]:
    space = Workspace.create(tmp_path_factory.mktemp("observability"))
    space.publish("demo", "1.0.0")
    grpc_port = free_port()
    config = space.config(
        space.root / "service.yaml",
        {"name": "demo"},
        protocols={"grpc_port": grpc_port},
        observability={"drift": {"window": 200, "min_rows": 100}},
    )
    with TestClient(create_app(load_config(config)), raise_server_exceptions=False) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=60)
        yield client, grpc_port


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (sample, have), v in found.items() if sample == name and set(labels.items()) <= have)


def ask_every_protocol(client: TestClient, grpc_port: int) -> None:
    assert client.post("/api/models/demo/prediction", json=DEMO).status_code == 200
    assert client.post("/v1/models/demo:predict", json={"instances": [[7.5, 3, "BLUE"]]}).status_code == 200
    tensors = [
        {"name": "size", "shape": [1], "datatype": "FP64", "data": [7.5]},
        {"name": "count", "shape": [1], "datatype": "INT64", "data": [3]},
        {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["BLUE"]},
    ]
    assert client.post("/v2/models/demo/infer", json={"inputs": tensors}).status_code == 200
    seldon = {"data": {"names": ["size", "count", "color"], "ndarray": [[7.5, 3, "BLUE"]]}}
    assert client.post("/seldon/default/demo/api/v1.0/predictions", json=seldon).status_code == 200
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        inputs = [
            grpcclient.InferInput("size", [1], "FP64"),
            grpcclient.InferInput("count", [1], "INT64"),
            grpcclient.InferInput("color", [1], "BYTES"),
        ]
        inputs[0].set_data_from_numpy(np.array([7.5]))
        inputs[1].set_data_from_numpy(np.array([3], dtype=np.int64))
        inputs[2].set_data_from_numpy(np.array(["BLUE"], dtype=np.object_))
        grpc.infer("demo", inputs)
    finally:
        grpc.close()


def test_every_protocol_is_counted_and_timed_once_per_request(service: tuple[TestClient, int]) -> None:
    client, grpc_port = service
    before = samples(client)
    ask_every_protocol(client, grpc_port)
    after = samples(client)
    for protocol in ("native", "kserve_v1", "v2_rest", "seldon", "v2_grpc"):
        labels = {"model": "demo", "version": "1.0.0", "protocol": protocol, "status_class": "2xx"}
        assert value(after, "sealserve_requests_total", **labels) - value(before, "sealserve_requests_total", **labels) == 1, protocol
        observed = value(after, "sealserve_request_duration_seconds_count", **labels)
        assert observed - value(before, "sealserve_request_duration_seconds_count", **labels) == 1, protocol
    calls = value(after, "sealserve_prediction_duration_seconds_count", model="demo") - value(
        before, "sealserve_prediction_duration_seconds_count", model="demo"
    )
    assert calls == 5
    info = value(after, "sealserve_model_info", model="demo", version="1.0.0", signer_kid="test-key")
    assert info == 1


def ask_ghosts(client: TestClient, names: range) -> None:
    for index in names:
        assert client.post(f"/api/models/ghost-{index}/prediction", json=DEMO).status_code == 404
        assert client.post(f"/v2/models/ghost-{index}/infer", json={"inputs": []}).status_code == 404  # resolved before decoding
        assert client.get(f"/random/{index}").status_code == 404


def test_failures_are_counted_by_kind_and_clients_cannot_create_series(service: tuple[TestClient, int]) -> None:
    client, _ = service
    before = samples(client)
    assert client.post("/api/models/demo/prediction", json={**DEMO, "size": 70}).status_code == 422
    assert client.post("/api/models/demo/prediction", content=b"{not json").status_code == 400  # refused before the data plane
    ask_ghosts(client, range(5))
    middle = samples(client)
    ask_ghosts(client, range(5, 25))
    after = samples(client)
    errors = "sealserve_errors_total"
    assert value(middle, errors, model="demo", kind="validation") - value(before, errors, model="demo", kind="validation") == 2
    assert value(after, errors, model="", kind="not_found") - value(middle, errors, model="", kind="not_found") == 40
    assert set(after) == set(middle)  # twenty more unknown names and random paths: not one new series
    assert {dict(labels).get("model") for (_, labels) in after} <= {"demo", "", None}


def test_the_request_id_is_echoed_and_logged_as_one_json_line_without_inputs(service: tuple[TestClient, int]) -> None:
    client, _ = service
    lines = client.app.state.access_lines  # type: ignore[attr-defined]
    original, lines.stream = lines.stream, io.BytesIO()
    try:
        response = client.post("/api/models/demo/prediction", json=DEMO, headers={"X-Request-ID": "trace-42.a"})
        odd = client.post("/api/models/demo/prediction", json=DEMO, headers={"X-Request-ID": "bad id with spaces"})
        lines.flush()
        written = lines.stream.getvalue().decode()
    finally:
        lines.stream = original
    assert response.headers["x-request-id"] == "trace-42.a"
    assert odd.headers["x-request-id"] != "bad id with spaces"
    assert len(odd.headers["x-request-id"]) == 24  # a fresh id instead: process prefix and counter
    parsed = [json.loads(line) for line in written.splitlines()]
    [line] = [line for line in parsed if line["request_id"] == "trace-42.a"]
    assert line["logger"] == "sealserve.access"
    assert line["status"] == 200
    assert line["model"] == "demo"
    assert line["version"] == "1.0.0"
    assert line["protocol"] == "native"
    assert line["latency_ms"] > 0
    assert "BLUE" not in written  # inputs never reach the log
    assert "7.5" not in written


def records_of(frame: Any) -> list[dict[str, Any]]:
    return [
        {"size": float(row.size), "count": int(row.count), "color": LABEL_OF_CODE[float(row.color)]}
        for row in frame.itertuples(index=False)
    ]


def drift_of(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/models/demo/drift")
    assert response.status_code == 200
    report: dict[str, Any] = response.json()
    return report


def test_drift_is_ok_for_the_training_data_and_alerts_on_exactly_the_shifted_feature(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    space.publish("demo", "1.0.0")
    config = space.config(tmp_path / "service.yaml", {"name": "demo"}, observability={"drift": {"window": 200, "min_rows": 100}})
    frame, _ = training_data()
    with TestClient(create_app(load_config(config))) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=60)
        assert client.get("/api/models/demo").json()["drift"] == "insufficient_data"
        for start in range(0, 200, 40):  # batches of 40 take the columnar path; the records path is tested by single calls below
            assert client.post("/api/models/demo/predictions", json=records_of(frame.iloc[start : start + 40])).status_code == 200
        report = drift_of(client)
        assert report["window_rows"] == 200
        assert {feature["name"]: feature["status"] for feature in report["features"]} == {"size": "ok", "count": "ok", "color": "ok"}
        assert client.get("/api/models/demo").json()["drift"] == "ok"

        shifted = frame.assign(size=np.clip(frame["size"] + 6.0, 0.0, 10.0))
        for record in records_of(shifted.iloc[:60]):
            assert client.post("/api/models/demo/prediction", json=record).status_code == 200
        assert client.post("/api/models/demo/predictions", json=records_of(shifted.iloc[60:200])).status_code == 200
        report = drift_of(client)
        statuses = {feature["name"]: feature["status"] for feature in report["features"]}
        assert statuses == {"size": "alert", "count": "ok", "color": "ok"}, report
        assert report["status"] == "alert"
        psi = value(samples(client), "sealserve_drift_psi", model="demo", feature="size")
        assert psi >= 0.25
