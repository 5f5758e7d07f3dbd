"""SIGTERM drains the real server: readiness 503 at once, connections accepted for drain_seconds then refused, requests
and gRPC calls in flight finished, the prediction log flushed, exit 0 — with one worker and with two.

A request is held in flight deterministically by sending its headers and half its body over a raw socket; a gRPC call
by a model that waits for a file the test creates.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient  # type: ignore[import-untyped]

from tests.support.bundles import Workspace
from tests.support.server import RunningServer, free_port, serve, wait_until

ROOT = Path(__file__).resolve().parents[2]
RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}
DRAIN = 2.0
BOUND = 15.0  # seconds from SIGTERM to exit: the drain, uvicorn's shutdown, and an interpreter's exit on a shared machine


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("drain"))
    space.publish("demo", "1.0.0")
    return space


class HeldRequest:
    """A POST whose headers and first half of the body are sent; the rest goes when the test says so."""

    def __init__(self, server: RunningServer, request_id: str) -> None:
        body = json.dumps(RECORD).encode()
        self.rest = body[len(body) // 2 :]
        port = int(server.url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        head = (
            f"POST /api/models/demo/prediction HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Request-ID: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + body[: len(body) // 2])

    def finish(self) -> tuple[int, str, dict[str, Any]]:
        """Send the rest of the body; the status, the Connection header and the JSON body of the answer."""
        self.sock.sendall(self.rest)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        self.sock.close()
        head, body = answer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers.get("connection", ""), json.loads(body)


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def readiness(server: RunningServer, path: str = "/api/health/ready") -> int:
    return httpx.get(server.url + path, timeout=5).status_code


def refused(server: RunningServer) -> bool:
    port = int(server.url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def gated_model(folder: Path) -> tuple[dict[str, Any], Path, Path]:
    """A model entry whose predictions wait for `gate` to exist, and write `entered` when they start."""
    gate, entered = folder / "gate", folder / "entered"
    configuration = {"gate": str(gate), "entered": str(entered)}
    return {"class_path": "tests.support.file_gated_model.FileGatedRiskModel", "configuration": configuration}, gate, entered


def importing_tests(environment: dict[str, str]) -> dict[str, str]:
    """The server imports the gated model class from this tree."""
    return {**environment, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def exit_code(process: subprocess.Popen[bytes], signalled: float) -> int:
    wait_until(lambda: process.poll() is not None, timeout=BOUND - (time.monotonic() - signalled))
    return int(process.returncode)


def test_a_request_in_flight_completes_readiness_is_503_new_connections_are_refused_after_the_drain_and_the_log_is_complete(
    workspace: Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "predictions.jsonl"
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo", "prediction_log": {"path": str(log)}})
    with serve(config, tmp_path, env={"SEALSERVE_DRAIN_SECONDS": str(DRAIN)}) as server, server.client() as kept, server.client() as idle:
        assert kept.get("/api/health").headers.get("connection") != "close"  # two kept-alive connections
        assert idle.get("/api/health").headers.get("connection") != "close"
        held = HeldRequest(server, "held-1")
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: readiness(server) == 503, timeout=DRAIN)
        assert kept.get("/api/health").headers["connection"] == "close"  # the next request on it is the last
        assert readiness(server, "/v2/health/ready") == 503
        assert httpx.get(f"{server.url}/v1/models/demo", timeout=5).status_code == 503
        during = httpx.post(f"{server.url}/api/models/demo/prediction", json=RECORD, headers={"X-Request-ID": "during-1"}, timeout=5)
        assert (during.status_code, during.headers["connection"]) == (200, "close")  # a new connection in the window is served
        wait_until(lambda: refused(server), timeout=DRAIN + 5)
        assert time.monotonic() - signalled >= DRAIN - 0.5
        assert server.process.poll() is None  # still finishing the held request
        status, connection, body = held.finish()
        assert (status, connection) == (200, "close")
        assert body["model_version"] == "1.0.0"
        assert exit_code(server.process, signalled) == 0  # the idle kept-alive connection did not hold it
        text = server.log()
    assert "draining;" in text
    assert re.search(r"drained in [0-9.]+ s: [0-9]+ HTTP requests and 0 gRPC calls finished since the drain began", text)
    logged = [json.loads(line)["request_id"] for line in log.read_text().splitlines()]
    assert sorted(logged) == ["during-1", "held-1"]


def test_a_grpc_call_in_flight_completes_and_server_ready_turns_false(workspace: Workspace, tmp_path: Path) -> None:
    grpc_port = free_port()
    model, gate, entered = gated_model(tmp_path)
    config = workspace.config(tmp_path / "service.yaml", model, protocols={"grpc_port": grpc_port})
    with serve(config, tmp_path, env=importing_tests({"SEALSERVE_DRAIN_SECONDS": str(DRAIN)})) as server:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_server_ready()
        inputs = []
        values = (("body_mass_index", "INT64", np.array([30])), ("general_health", "BYTES", np.array([b"GOOD"], dtype=object)))
        for name, datatype, value in values:
            tensor = grpcclient.InferInput(name, [1], datatype)
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        results: list[Any] = []
        call = threading.Thread(target=lambda: results.append(_infer(client, inputs)), daemon=True)
        call.start()
        wait_until(entered.exists, timeout=20)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: readiness(server) == 503, timeout=DRAIN)
        probe = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert not probe.is_server_ready()
        assert not probe.is_model_ready("file_gated_risk")
        probe.close()
        wait_until(lambda: refused(server), timeout=DRAIN + 5)  # the drain window is over; the call is still held
        assert call.is_alive()
        gate.touch()
        call.join(timeout=20)
        assert len(results) == 1
        assert not isinstance(results[0], Exception), results
        assert results[0].as_numpy("risk_score") is not None
        client.close()
        assert exit_code(server.process, signalled) == 0
        assert "and 3 gRPC calls finished since the drain began" in server.log()  # the two probes and the held call


def _infer(client: Any, inputs: list[Any]) -> Any:
    try:
        return client.infer("file_gated_risk", inputs, client_timeout=30)
    except Exception as exc:  # handed to the test thread, which asserts on it
        return exc


def test_with_two_workers_both_drain_and_the_parent_exits_0(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"})
    with serve(config, tmp_path, env={"SEALSERVE_DRAIN_SECONDS": str(DRAIN)}, extra_args=("--workers", "2")) as server:
        wait_until(lambda: server.log().count("Application startup complete") >= 2, timeout=60)
        held = HeldRequest(server, "held-2")
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: server.log().count("draining;") == 2, timeout=DRAIN)
        wait_until(lambda: readiness(server) == 503, timeout=DRAIN)
        wait_until(lambda: refused(server), timeout=DRAIN + 5)
        status, connection, _ = held.finish()
        assert (status, connection) == (200, "close")
        assert exit_code(server.process, signalled) == 0
        wait_until(lambda: server.log().count("drained in") == 2, timeout=5)


def test_past_the_timeout_work_still_running_is_abandoned_and_the_exit_is_still_0_and_prompt(workspace: Workspace, tmp_path: Path) -> None:
    model, _, entered = gated_model(tmp_path)  # the gate is never opened: the model call would take 30 s
    config = workspace.config(tmp_path / "service.yaml", model)
    timeout = 2.0
    with serve(config, tmp_path, env=importing_tests({"SEALSERVE_SHUTDOWN_TIMEOUT": str(timeout)})) as server:
        url = f"{server.url}/api/models/file_gated_risk/prediction"
        call = threading.Thread(target=_post_ignoring_errors, args=(url, {"body_mass_index": 30, "general_health": "GOOD"}), daemon=True)
        call.start()
        wait_until(entered.exists, timeout=20)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert exit_code(server.process, signalled) == 0
        assert time.monotonic() - signalled < timeout + 5  # not the 30 s the model call would take
        assert "shutdown.timeout passed with work still running; exiting now" in server.log()


def _post_ignoring_errors(url: str, body: dict[str, Any]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server gave up on this request: that is the point
        httpx.post(url, json=body, timeout=30)
