"""Inference events against the real server and a local sink: KServe's attributes on every protocol, request and response
paired by ce-id, the bodies as sent and answered, redaction, the bearer token, and a sink that is down, slow, then back."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.support.bundles import Workspace
from tests.support.server import SEALSERVE, RunningServer, free_port, serve, wait_until
from tests.support.sink import Received, RecordingSink

TOKEN = "sink-token-0123456789"
DEMO = {"size": 7.5, "count": 3, "color": "BLUE"}
REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class Served:
    server: RunningServer
    grpc: str
    sink: RecordingSink

    def pair(self, event_id: str) -> tuple[Received, Received]:
        wait_until(lambda: self.sink.pair(event_id), timeout=30)
        found = self.sink.pair(event_id)
        assert found is not None
        return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("events")
    space = Workspace.create(root)
    space.publish("demo", "1.0.0")
    space.publish("masked", "1.0.0")
    token_file = root / "sink-token"
    token_file.write_text(TOKEN + "\n")
    grpc_port = free_port()
    with RecordingSink() as sink:
        events = {"url": sink.url, "token_file": str(token_file)}
        config = space.config(
            root / "service.yaml",
            {"name": "demo", "events": events},
            {"name": "masked", "events": {**events, "redact": ["color", "probabilities"]}},
        )
        with serve(config, root, env={"POD_NAMESPACE": "ml-team"}, extra_args=("--grpc-port", str(grpc_port))) as server:
            yield Served(server, f"127.0.0.1:{grpc_port}", sink)
            assert "Traceback" not in server.log(), server.log()


def attributes(served: Served, event: Received, kind: str, event_id: str, endpoint: str, model: str = "demo") -> None:
    """Exactly KServe's attributes (plus modelversion), and a token for the sink."""
    said = dict(event.ce)
    datetime.fromisoformat(said.pop("ce-time"))
    assert said == {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-id": event_id,
        "ce-source": served.server.url + "/",
        "ce-inferenceservicename": model,
        "ce-namespace": "ml-team",
        "ce-endpoint": endpoint,
        "ce-component": "predictor",
        "ce-modelversion": "1.0.0",
    }
    assert event.headers["authorization"] == f"Bearer {TOKEN}"


def v2_input(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}


V2_INPUTS = [v2_input("size", "FP64", [7.5]), v2_input("count", "INT64", [3]), v2_input("color", "BYTES", ["BLUE"])]
V2_BODY = {"id": "v2-call", "inputs": V2_INPUTS}
REST_CASES = {
    "native": ("/api/models/demo/prediction", DEMO),
    "native_batch": ("/api/models/demo/predictions", [DEMO, {**DEMO, "color": "RED"}]),
    "kserve_v1": ("/v1/models/demo:predict", {"instances": [[7.5, 3, "BLUE"], {"size": 1.0, "count": 2, "color": "RED"}]}),
    "v2_rest": ("/v2/models/demo/infer", V2_BODY),
    "seldon": ("/seldon/ml-team/demo/api/v1.0/predictions", {"data": {"names": ["size", "count", "color"], "ndarray": [[7.5, 3, "BLUE"]]}}),
}


@pytest.mark.parametrize("case", REST_CASES)
def test_rest_events_carry_the_bodies_as_sent_and_answered(served: Served, case: str) -> None:
    path, payload = REST_CASES[case]
    sent = json.dumps(payload, indent=1).encode()  # an unusual layout: the event must hold these bytes, not a re-encoding
    event_id = f"rest-{case}"
    with served.server.client() as client:
        answer = client.post(path, content=sent, headers={"Content-Type": "application/json", "X-Request-ID": event_id})
    assert answer.status_code == 200, answer.text
    request, response = served.pair(event_id)
    endpoint = case.removesuffix("_batch")
    attributes(served, request, "request", event_id, endpoint)
    attributes(served, response, "response", event_id, endpoint)
    assert request.body == sent
    assert response.body == answer.content
    assert request.headers["ce-time"] <= response.headers["ce-time"]
    assert len(served.sink.events(event_id)) == 2


def test_v2_binary_inputs_are_written_into_the_request_event_as_data(served: Served) -> None:
    header = {
        "inputs": [
            {"name": "size", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
            {"name": "count", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
            v2_input("color", "BYTES", ["BLUE", "RED"]),
        ]
    }
    encoded = json.dumps(header).encode()
    binary = np.array([7.5, 1.0]).tobytes() + np.array([3, 2], dtype=np.int64).tobytes()
    with served.server.client() as client:
        answer = client.post(
            "/v2/models/demo/infer",
            content=encoded + binary,
            headers={
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(encoded)),
                "X-Request-ID": "v2-bin",
            },
        )
    assert answer.status_code == 200, answer.text
    request, response = served.pair("v2-bin")
    attributes(served, request, "request", "v2-bin", "v2_rest")
    assert request.json() == {"inputs": [v2_input("size", "FP64", [7.5, 1.0]), v2_input("count", "INT64", [3, 2]), header["inputs"][2]]}
    assert response.body == answer.content


def demo_tensors(color: str = "BLUE") -> list[grpcclient.InferInput]:
    inputs = [
        grpcclient.InferInput("size", [1], "FP64"),
        grpcclient.InferInput("count", [1], "INT64"),
        grpcclient.InferInput("color", [1], "BYTES"),
    ]
    inputs[0].set_data_from_numpy(np.array([7.5]))
    inputs[1].set_data_from_numpy(np.array([3], dtype=np.int64))
    inputs[2].set_data_from_numpy(np.array([color], dtype=np.object_))
    return inputs


def test_grpc_events_hold_the_call_as_v2_json(served: Served) -> None:
    client = grpcclient.InferenceServerClient(served.grpc)
    try:
        result = client.infer("demo", demo_tensors(), request_id="grpc-call", headers={"x-request-id": "grpc-1"})
    finally:
        client.close()
    request, response = served.pair("grpc-1")
    attributes(served, request, "request", "grpc-1", "v2_grpc")
    attributes(served, response, "response", "grpc-1", "v2_grpc")
    assert request.json() == {
        "id": "grpc-call",
        "inputs": [
            {"name": "size", "datatype": "FP64", "shape": [1], "data": [7.5]},
            {"name": "count", "datatype": "INT64", "shape": [1], "data": [3]},
            {"name": "color", "datatype": "BYTES", "shape": [1], "data": ["BLUE"]},
        ],
    }
    answered = response.json()
    assert (answered["model_name"], answered["model_version"], answered["id"]) == ("demo", "1.0.0", "grpc-call")
    for output in answered["outputs"]:
        received = result.as_numpy(output["name"])
        assert list(received.shape) == output["shape"]
        assert [value.decode() if isinstance(value, bytes) else value for value in received.reshape(-1).tolist()] == output["data"]


def test_redaction_replaces_the_named_values_before_they_leave(served: Served) -> None:
    with served.server.client() as client:
        calls = {
            "masked-native": ("/api/models/masked/prediction", DEMO),
            "masked-v1": ("/v1/models/masked:predict", {"instances": [[7.5, 3, "BLUE"], {"size": 1.0, "count": 2, "color": "RED"}]}),
            "masked-v2": ("/v2/models/masked/infer", V2_BODY),
            "masked-seldon": ("/seldon/ml-team/masked/api/v1.0/predictions", {"data": {"ndarray": [[7.5, 3, "BLUE"]]}}),
        }
        for event_id, (path, payload) in calls.items():
            assert client.post(path, json=payload, headers={"X-Request-ID": event_id}).status_code == 200
    grpc = grpcclient.InferenceServerClient(served.grpc)
    try:
        grpc.infer("masked", demo_tensors(), headers={"x-request-id": "masked-grpc"})
    finally:
        grpc.close()
    native, answer = served.pair("masked-native")
    attributes(served, native, "request", "masked-native", "native", model="masked")
    assert native.json() == {**DEMO, "color": REDACTED}
    assert answer.json()["output"]["probabilities"] == REDACTED
    assert answer.json()["output"]["prediction"] in ("small", "large")
    v1 = served.pair("masked-v1")[0].json()
    assert v1 == {"instances": [[7.5, 3, REDACTED], {"size": 1.0, "count": 2, "color": REDACTED}]}
    v2 = served.pair("masked-v2")[0].json()
    assert v2["inputs"] == [*V2_INPUTS[:2], {**V2_INPUTS[2], "data": [REDACTED]}]
    assert served.pair("masked-seldon")[0].json() == {"data": {"ndarray": [[7.5, 3, REDACTED]]}}
    assert served.pair("masked-grpc")[0].json()["inputs"][2]["data"] == [REDACTED]
    for event_id in calls.keys() | {"masked-grpc"}:
        assert all(b'"BLUE"' not in event.body and b'"RED"' not in event.body for event in served.sink.events(event_id))


def dropped(client: httpx.Client, reason: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^sealserve_events_dropped_total{{model="demo",reason="{reason}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def slowest_of(client: httpx.Client, count: int, prefix: str) -> float:
    slowest = 0.0
    for number in range(count):
        started = time.perf_counter()
        answer = client.post("/api/models/demo/prediction", json=DEMO, headers={"X-Request-ID": f"{prefix}-{number}"})
        assert answer.status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def test_a_sink_down_then_slow_drops_and_counts_without_slowing_requests_and_gets_events_when_back(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    space.publish("demo", "1.0.0")
    port = free_port()
    budget = 4.0  # seconds an event may take: a request that waited on the sink would take at least this long
    events = {"url": f"http://127.0.0.1:{port}/events", "queue": 2, "timeout": budget, "retries": 2}
    config = space.config(tmp_path / "service.yaml", {"name": "demo", "events": events})
    with serve(config, tmp_path) as server, server.client() as client:
        assert slowest_of(client, 20, "down") < budget / 2  # nothing listens on the sink's port
        wait_until(lambda: dropped(client, "failed") >= 1 and dropped(client, "queue_full") >= 1, timeout=30)

        with RecordingSink(port) as sink:
            sink.answering.clear()  # the sink takes each event, then does not answer
            assert slowest_of(client, 10, "slow") < budget / 2
            wait_until(lambda: dropped(client, "timeout") >= 1, timeout=30)

            sink.answering.set()
            assert client.post("/api/models/demo/prediction", json=DEMO, headers={"X-Request-ID": "back-1"}).status_code == 200
            wait_until(lambda: sink.pair("back-1"), timeout=30)
            assert sink.pair("back-1") is not None
        assert dropped(client, "queue_full") >= 10
    assert "Traceback" not in server.log(), server.log()


def test_serve_refuses_to_start_when_the_sinks_token_file_cannot_be_read(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    events = {"url": "http://127.0.0.1:9/events", "token_file": str(tmp_path / "no-such-token")}
    config = space.config(tmp_path / "service.yaml", {"name": "demo", "events": events})
    done = subprocess.run([SEALSERVE, "serve", str(config), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "events.token_file" in done.stderr
    assert "no-such-token" in done.stderr
    assert "Traceback" not in done.stderr
