"""Readiness on every protocol is false until the model is verified and loaded, and stays false for a refused one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from sealserve.bundle import keys
from sealserve.serve import ModelRegistry, create_app, load_config
from sealserve.serve.config import BundleSource, ClassSource
from sealserve.serve.lifecycle.registry import ModelState
from tests.support.bundles import Workspace
from tests.support.server import wait_until

RECORD_INPUTS = [
    {"name": "size", "shape": [1], "datatype": "FP64", "data": [7.5]},
    {"name": "count", "shape": [1], "datatype": "INT64", "data": [3]},
    {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["BLUE"]},
]


class GatedRegistry(ModelRegistry):
    """A real registry whose loads (fetch, verify, deserialize) wait until the test opens the gate."""

    def __init__(self, sources: list[BundleSource | ClassSource], gate: threading.Event) -> None:
        super().__init__(sources)
        self.gate = gate
        self.closing = False

    def load(self, state: ModelState) -> None:
        if not self.gate.wait(30):
            raise TimeoutError("the test never opened the gate")
        if not self.closing:
            super().load(state)


@dataclass
class Gated:
    client: TestClient
    registry: GatedRegistry
    gate: threading.Event
    grpc: grpcclient.InferenceServerClient


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Gated]:
    space = Workspace.create(tmp_path)
    space.publish("demo", "1.0.0")
    space.publish("untrusted", "1.0.0", private_key=keys.generate(keys.Algorithm.ECDSA_P256, "stranger"))
    config = load_config(
        space.config(tmp_path / "service.yaml", {"name": "demo"}, {"name": "untrusted"}, protocols={"grpc_port": 0, "v2_repository": True})
    )
    gate = threading.Event()
    registry = GatedRegistry(list(config.models), gate)
    app = create_app(config, registry)
    try:
        with TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 50000)) as client:
            rpc = grpcclient.InferenceServerClient(f"127.0.0.1:{app.state.protocols.grpc_port}")
            try:
                yield Gated(client, registry, gate, rpc)
            finally:
                rpc.close()
                registry.closing = True  # let the loading thread finish at once, so the app stops promptly
                gate.set()
    finally:
        gate.set()


def test_nothing_is_ready_before_verification_then_only_the_verified_model(gated: Gated) -> None:
    client, rpc = gated.client, gated.grpc
    assert (client.get("/v2/health/ready").status_code, client.get("/v2/health/ready").json()) == (503, {"ready": False})
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/models/demo/ready").status_code == 503
    assert client.get("/v1/models/demo").json() == {"name": "demo", "ready": False}
    assert client.get("/health/status").status_code == 503
    refused = client.post("/v2/models/demo/infer", json={"inputs": RECORD_INPUTS})
    assert (refused.status_code, refused.json(), refused.headers["retry-after"]) == (
        503,
        {"error": "model 'demo' is not ready: still loading"},
        "5",
    )
    assert client.post("/v1/models/demo:predict", json={"instances": [[7.5, 3, "BLUE"]]}).status_code == 503
    assert (
        client.post("/seldon/x/demo/api/v1.0/predictions", json={"data": {"ndarray": [[7.5, 3, "BLUE"]]}}).json()["status"]["reason"]
        == "MODEL_NOT_READY"
    )
    assert [entry["state"] for entry in client.post("/v2/repository/index").json()] == ["LOADING", "LOADING"]
    assert rpc.is_server_live()
    assert not rpc.is_server_ready()
    assert not rpc.is_model_ready("demo")
    with pytest.raises(InferenceServerException) as not_ready:
        rpc.get_model_metadata("demo")
    assert not_ready.value.status() == "StatusCode.UNAVAILABLE"

    gated.gate.set()
    wait_until(lambda: all(state.attempted for state in gated.registry.states), timeout=30)

    assert client.get("/v2/models/demo/ready").status_code == 200
    assert client.post("/v2/models/demo/infer", json={"inputs": RECORD_INPUTS}).json()["model_version"] == "1.0.0"
    assert rpc.is_model_ready("demo")
    assert not rpc.is_model_ready("untrusted")
    assert not rpc.is_server_ready()
    assert client.get("/v2/health/ready").status_code == 503  # one configured model was refused
    refused = client.post("/v2/models/untrusted/infer", json={"inputs": RECORD_INPUTS})
    assert refused.status_code == 503
    assert "signer key 'stranger' is not in the keyring" in refused.json()["error"]
    index = {entry["name"]: entry for entry in client.post("/v2/repository/index").json()}
    assert index["demo"]["state"] == "READY"
    assert index["untrusted"]["state"] == "UNAVAILABLE"
    assert "stranger" in index["untrusted"]["reason"]


def test_the_repository_extension_answers_loopback_clients_only(gated: Gated) -> None:
    remote = TestClient(gated.client.app, raise_server_exceptions=False, client=("10.1.2.3", 50000))
    for path in ("/v2/repository/index", "/v2/repository/models/demo/load", "/v2/repository/models/demo/unload"):
        response = remote.post(path)
        assert (response.status_code, response.json()) == (
            403,
            {"error": "the repository extension answers loopback clients only (or callers with the admin scope when auth is on)"},
        )


def test_every_readiness_answer_turns_not_ready_when_the_drain_begins_while_predictions_are_still_served(gated: Gated) -> None:
    client, rpc = gated.client, gated.grpc
    gated.gate.set()
    wait_until(lambda: client.get("/v2/models/demo/ready").status_code == 200, timeout=30)
    client.app.state.drain.begin()  # type: ignore[attr-defined]  # what the draining server does on SIGTERM (serve/shutdown.py)
    assert client.get("/api/health/ready").json()["status"] == "stopping"
    for path in ("/api/health/ready", "/v2/health/ready", "/v2/models/demo/ready", "/v1/models/demo", "/health/status"):
        assert client.get(path).status_code == 503, path
    assert not rpc.is_server_ready()
    assert not rpc.is_model_ready("demo")
    assert client.get("/api/health").status_code == 200  # alive: the drain is not a failure
    assert client.post("/v2/models/demo/infer", json={"inputs": RECORD_INPUTS}).json()["model_version"] == "1.0.0"
