"""Every protocol goes through the one data plane: its hooks see each request, its runner keeps callers' rows apart."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient

from sealserve.serve import create_app, load_config
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request.dataplane import Inference, InferenceHook, InferenceRequest
from tests.support import gated_model
from tests.support.bundles import Workspace
from tests.support.server import free_port, wait_until

DEMO = {"size": 7.5, "count": 3, "color": "BLUE"}


class CountingHook(InferenceHook):
    """Counts requests per protocol, and the status of the ones that failed."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.failed: Counter[tuple[str, int]] = Counter()
        self.refuse_model: str | None = None

    def before(self, request: InferenceRequest, served: ServedModel) -> None:
        if served.name == self.refuse_model:
            raise ServingError(403, "forbidden", "refused by a hook")

    def after(self, request: InferenceRequest, result: Inference | None, error: ServingError | None) -> None:
        self.seen[request.protocol.value] += 1
        if error is not None:
            self.failed[(request.protocol.value, error.status)] += 1


@pytest.fixture(scope="module")
def app_and_hook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, CountingHook, int]]:
    space = Workspace.create(tmp_path_factory.mktemp("dataplane"))
    space.publish("demo", "1.0.0")
    grpc_port = free_port()
    model = {"name": "demo", "runtime": "reference"}  # the scikit-learn runtime: it runs off the event loop, through the batcher
    gated = {"class_path": "tests.support.gated_model.GatedRiskModel"}
    config = space.config(space.root / "service.yaml", model, gated, protocols={"grpc_port": grpc_port}, limits={"max_batch_size": 50})
    app = create_app(load_config(config))
    hook = CountingHook()
    app.state.dataplane.hooks.append(hook)
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=60)
        yield client, hook, grpc_port


def test_every_protocol_calls_the_data_plane_once_per_request(app_and_hook: tuple[TestClient, CountingHook, int]) -> None:
    client, hook, grpc_port = app_and_hook
    hook.seen.clear()
    assert client.post("/api/models/demo/prediction", json=DEMO).status_code == 200
    assert client.post("/api/models/demo/predictions", json=[DEMO, DEMO]).status_code == 200
    assert client.post("/v1/models/demo:predict", json={"instances": [DEMO]}).status_code == 200
    v2_inputs = [
        {"name": "size", "shape": [1], "datatype": "FP64", "data": [7.5]},
        {"name": "count", "shape": [1], "datatype": "INT64", "data": [3]},
        {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["BLUE"]},
    ]
    assert client.post("/v2/models/demo/infer", json={"inputs": v2_inputs}).status_code == 200
    seldon = {"data": {"names": ["size", "count", "color"], "ndarray": [[7.5, 3, "BLUE"]]}}
    assert client.post("/seldon/ns/demo/api/v1.0/predictions", json=seldon).status_code == 200
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    inputs = []
    for name, datatype, value in (
        ("size", "FP64", np.array([7.5])),
        ("count", "INT64", np.array([3])),
        ("color", "BYTES", np.array([b"BLUE"], dtype=object)),
    ):
        tensor = grpcclient.InferInput(name, [1], datatype)
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    assert grpc.infer("demo", inputs).as_numpy("predict") is not None
    grpc.close()
    assert hook.seen == {"native": 2, "kserve_v1": 1, "v2_rest": 1, "seldon": 1, "v2_grpc": 1}


def test_failures_reach_the_hooks_with_the_status_the_client_got(app_and_hook: tuple[TestClient, CountingHook, int]) -> None:
    client, hook, _ = app_and_hook
    hook.failed.clear()
    assert client.post("/api/models/demo/prediction", json={**DEMO, "color": "PINK"}).status_code == 422
    assert client.post("/v1/models/nope:predict", json={"instances": [DEMO]}).status_code == 404
    assert client.post("/v1/models/demo:predict", json={"instances": [DEMO] * 51}).status_code == 413
    assert hook.failed == {("native", 422): 1, ("kserve_v1", 404): 1, ("kserve_v1", 413): 1}


def test_a_hook_can_refuse_a_request_on_every_protocol(app_and_hook: tuple[TestClient, CountingHook, int]) -> None:
    client, hook, _ = app_and_hook
    hook.refuse_model = "demo"
    try:
        native = client.post("/api/models/demo/prediction", json=DEMO)
        v1 = client.post("/v1/models/demo:predict", json={"instances": [DEMO]})
    finally:
        hook.refuse_model = None
    assert (native.status_code, native.json()["error"]["code"]) == (403, "forbidden")
    assert (v1.status_code, v1.json()["error"]) == (403, "refused by a hook")
    assert client.post("/api/models/demo/prediction", json=DEMO).status_code == 200  # positive control


def test_concurrent_callers_of_different_batch_sizes_each_get_exactly_their_own_rows(
    app_and_hook: tuple[TestClient, CountingHook, int],
) -> None:
    """The scikit-learn model runs off the event loop through its batcher; answers must never mix callers' rows."""
    client, _, _ = app_and_hook
    rng = np.random.default_rng(1)
    colors = ["RED", "GREEN", "BLUE"]
    batches: list[list[dict[str, Any]]] = [
        [{"size": float(rng.uniform(0, 10)), "count": int(rng.integers(0, 20)), "color": colors[int(rng.integers(0, 3))]} for _ in range(n)]
        for n in rng.integers(1, 40, 200)  # both sides of the columnar threshold: the forms mix in shared batches
    ]
    expected = [[one(client, record) for record in batch] for batch in batches[:20]]
    lock = threading.Lock()
    answers: dict[int, list[str]] = {}

    def ask(index: int) -> None:
        response = client.post("/api/models/demo/predictions", json=batches[index])
        assert response.status_code == 200, response.text
        with lock:
            answers[index] = [output["prediction"] for output in response.json()["outputs"]]

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(ask, range(len(batches))))
    assert [answers[index] for index in range(20)] == expected
    assert all(len(answers[index]) == len(batches[index]) for index in range(len(batches)))
    runner = client.app.state.registry.get("demo").attachments["runner"]  # type: ignore[attr-defined]
    assert runner.batcher.stats.parts >= len(batches)


def one(client: TestClient, record: dict[str, Any]) -> str:
    response = client.post("/api/models/demo/prediction", json=record)
    assert response.status_code == 200
    prediction: str = response.json()["output"]["prediction"]
    return prediction


def test_unknown_and_oversized_requests_are_refused_before_decoding(app_and_hook: tuple[TestClient, CountingHook, int]) -> None:
    client, _, _ = app_and_hook
    too_many: Sequence[dict[str, Any]] = [{}] * 60
    response = client.post("/api/models/demo/predictions", json=too_many)
    assert response.status_code == 413  # counted before any record is validated (60 empty records would be 60 × 3 errors)
    assert "exceeds max_batch_size 50" in response.json()["error"]["message"]


def test_health_probes_answer_while_a_long_prediction_runs(app_and_hook: tuple[TestClient, CountingHook, int]) -> None:
    client, _, _ = app_and_hook
    gated_model.GATE.clear()
    gated_model.ENTERED.clear()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(client.post, "/api/models/gated_risk/prediction", json={"body_mass_index": 30, "general_health": "GOOD"})
        assert gated_model.ENTERED.wait(timeout=30), "the prediction never started"
        try:
            assert client.get("/api/health/ready").status_code == 200
            assert client.get("/api/health").status_code == 200
            assert not pending.done()  # the prediction is still running while the probes answered
        finally:
            gated_model.GATE.set()
        assert pending.result(timeout=30).status_code == 200


def test_a_full_queue_answers_503_with_retry_after_and_the_queued_requests_still_complete(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("batching: {max_queue: 1}\nmodels:\n  - class_path: tests.support.gated_model.GatedRiskModel\n")
    app = create_app(load_config(config))
    body = {"body_mass_index": 30, "general_health": "GOOD"}
    gated_model.GATE.clear()
    gated_model.ENTERED.clear()
    with TestClient(app, raise_server_exceptions=False) as client, ThreadPoolExecutor(max_workers=2) as pool:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=30)
        running = pool.submit(client.post, "/api/models/gated_risk/prediction", json=body)
        assert gated_model.ENTERED.wait(timeout=30)
        queued = pool.submit(client.post, "/api/models/gated_risk/prediction", json=body)
        runner = next(iter(app.state.registry.served)).attachments["runner"]
        try:
            wait_until(lambda: runner.batcher.stats.queue_depth == 1, timeout=30)
            refused = client.post("/api/models/gated_risk/prediction", json=body)
        finally:
            gated_model.GATE.set()
        assert (refused.status_code, refused.headers["retry-after"], refused.json()["error"]["code"]) == (503, "1", "overloaded")
        assert running.result(timeout=30).status_code == 200
        assert queued.result(timeout=30).status_code == 200
