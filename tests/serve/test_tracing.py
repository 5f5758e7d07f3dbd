"""Tracing (docs/observability.md#tracing): real servers export to an OTLP receiver in this process.

One traced server (OTLP/HTTP) answers the read-only checks: every protocol continues the caller's trace with the
documented span tree, the access line names the span, and the load spans are there. A second server exports over
OTLP/gRPC with `parentbased_traceidratio` at 0.25; a third runs two workers and is only flushed by its shutdown; a
fourth is stopped by a Ctrl-C to its whole process group; a fifth has tracing turned off.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient

from sealserve.serve import create_app, load_config
from tests.support.bundles import Workspace
from tests.support.otlp import ReceivedSpan, Spans, grpc_receiver, http_receiver
from tests.support.server import RunningServer, free_port, serve, wait_until

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}
TENSORS = [
    {"name": "size", "shape": [1], "datatype": "FP64", "data": [7.5]},
    {"name": "count", "shape": [1], "datatype": "INT64", "data": [3]},
    {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["BLUE"]},
]
SELDON = {"data": {"names": ["size", "count", "color"], "ndarray": [[7.5, 3, "BLUE"]]}}
SERVER_KIND = 2  # SPAN_KIND_SERVER in OTLP
ERROR = 2  # STATUS_CODE_ERROR
QUICK_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
ROOT = Path(__file__).resolve().parents[2]
SEARCH_PATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the server imports the class model


@dataclass(frozen=True)
class Caller:
    """The client's own span, sent as `traceparent`."""

    trace_id: str
    span_id: str
    sampled: bool = True

    @classmethod
    def new(cls, sampled: bool = True) -> Caller:
        return cls(secrets.token_hex(16), secrets.token_hex(8), sampled)

    @property
    def headers(self) -> dict[str, str]:
        return {"traceparent": f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}", "tracestate": "vendor=value"}


@dataclass(frozen=True)
class Traced:
    server: RunningServer
    spans: Spans
    grpc_port: int


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("tracing"))
    space.publish("demo", "1.0.0")
    return space


@pytest.fixture(scope="module")
def traced(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    grpc_port = free_port()
    config = workspace.config(
        workspace.root / "traced.yaml",
        {"name": "demo", "trial_prediction": True},
        {"class_path": "tests.support.seed_model.ThresholdRiskModel", "configuration": {"threshold": 0.4}},
        protocols={"grpc_port": grpc_port},
    )
    with http_receiver() as (endpoint, spans):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "traced-test", "PYTHONPATH": SEARCH_PATH, **QUICK_EXPORT}
        with serve(config, tmp_path_factory.mktemp("traced-logs"), env=env) as server:
            yield Traced(server, spans, grpc_port)


def ask(protocol: str, traced: Traced, headers: dict[str, str]) -> None:
    """One prediction of the demo model over `protocol`, carrying `headers` (HTTP headers or gRPC metadata)."""
    if protocol == "v2_grpc":
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{traced.grpc_port}")
        try:
            inputs = [grpcclient.InferInput("size", [1], "FP64"), grpcclient.InferInput("count", [1], "INT64")]
            inputs.append(grpcclient.InferInput("color", [1], "BYTES"))
            inputs[0].set_data_from_numpy(np.array([7.5]))
            inputs[1].set_data_from_numpy(np.array([3], dtype=np.int64))
            inputs[2].set_data_from_numpy(np.array(["BLUE"], dtype=np.object_))
            client.infer("demo", inputs, headers=headers)
        finally:
            client.close()
        return
    path, body = {
        "native": ("/api/models/demo/prediction", RECORD),
        "kserve_v1": ("/v1/models/demo:predict", {"instances": [[7.5, 3, "BLUE"]]}),
        "v2_rest": ("/v2/models/demo/infer", {"inputs": TENSORS}),
        "seldon": ("/seldon/default/demo/api/v1.0/predictions", SELDON),
    }[protocol]
    response = httpx.post(f"{traced.server.url}{path}", json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def tree(spans: Spans, caller: Caller, children: int) -> tuple[ReceivedSpan, dict[str, ReceivedSpan]]:
    """The server span under the caller's span, and its children by name, once that many arrived."""

    def complete(received: list[ReceivedSpan]) -> bool:
        ours = [span for span in received if span.trace_id == caller.trace_id]
        servers = [span for span in ours if span.parent_span_id == caller.span_id]
        return len(servers) == 1 and sum(span.parent_span_id == servers[0].span_id for span in ours) >= children

    spans.wait(complete)
    ours = spans.of_trace(caller.trace_id)
    (server,) = [span for span in ours if span.parent_span_id == caller.span_id]
    below = {span.name: span for span in ours if span.parent_span_id == server.span_id}
    assert len(below) == len([span for span in ours if span.parent_span_id == server.span_id])  # one span per stage
    return server, below


ROUTES = {
    "native": "/api/models/{name}/prediction",
    "kserve_v1": "/v1/models/{name}:predict",
    "v2_rest": "/v2/models/{name}/infer",
    "seldon": "/seldon/{namespace}/{name}/api/v1.0/predictions",
}


@pytest.mark.parametrize("protocol", ["native", "kserve_v1", "v2_rest", "seldon", "v2_grpc"])
def test_each_protocol_continues_the_callers_trace(traced: Traced, protocol: str) -> None:
    caller = Caller.new()
    ask(protocol, traced, caller.headers)
    server, below = tree(traced.spans, caller, 3)
    assert server.kind == SERVER_KIND
    assert server.resource["service.name"] == "traced-test"
    if protocol == "v2_grpc":
        assert server.name == "inference.GRPCInferenceService/ModelInfer"
        assert server.attributes["rpc.system"] == "grpc"
        assert server.attributes["rpc.method"] == "ModelInfer"
        assert server.attributes["rpc.grpc.status_code"] == 0
    else:
        assert server.name == f"POST {ROUTES[protocol]}"
        assert server.attributes["http.route"] == ROUTES[protocol]
        assert server.attributes["http.response.status_code"] == 200
    model = below["model call"]
    runtime = model.attributes["sealserve.model.runtime"]
    expected = {"decode", "model call", "encode"} | ({"queue wait"} if runtime != "onnxruntime" else set())
    assert set(below) == expected
    assert model.attributes["sealserve.model.name"] == "demo"
    assert model.attributes["sealserve.model.version"] == "1.0.0"
    assert model.attributes["sealserve.model.rows"] == 1
    assert model.attributes["sealserve.protocol"] == protocol
    decode, encode = below["decode"], below["encode"]
    assert server.start <= decode.start <= decode.end <= model.start <= model.end <= encode.start <= encode.end <= server.end
    assert server.status != ERROR


def test_a_batched_model_shows_its_queue_wait(traced: Traced) -> None:
    caller = Caller.new()
    response = httpx.post(
        f"{traced.server.url}/api/models/threshold_risk/prediction",
        json={"body_mass_index": 30, "general_health": "GOOD"},
        headers=caller.headers,
        timeout=10,
    )
    assert response.status_code == 200
    _, below = tree(traced.spans, caller, 4)
    assert set(below) == {"decode", "queue wait", "model call", "encode"}
    assert below["queue wait"].end == below["model call"].start
    assert below["model call"].attributes["sealserve.model.runtime"] == "python"


def test_a_server_error_marks_the_server_span(traced: Traced) -> None:
    caller = Caller.new()
    response = httpx.post(
        f"{traced.server.url}/api/models/threshold_risk/prediction",
        json={"body_mass_index": 58, "general_health": "GOOD"},  # the model raises
        headers=caller.headers,
        timeout=10,
    )
    assert response.status_code == 500
    server, below = tree(traced.spans, caller, 1)
    assert server.status == ERROR
    assert server.attributes["http.response.status_code"] == 500
    assert "encode" not in below


def test_the_access_line_names_the_trace_and_the_span(traced: Traced) -> None:
    caller = Caller.new()
    request_id = f"tracing-{secrets.token_hex(4)}"
    ask("native", traced, {**caller.headers, "X-Request-ID": request_id})
    server, _ = tree(traced.spans, caller, 3)

    def line() -> dict[str, Any] | None:
        for text in traced.server.log().splitlines():
            if request_id in text and text.startswith("{"):
                fields: dict[str, Any] = json.loads(text)
                if fields.get("request_id") == request_id:
                    return fields
        return None

    wait_until(lambda: line() is not None, timeout=10)
    fields = line()
    assert fields is not None
    assert (fields["trace_id"], fields["span_id"]) == (caller.trace_id, server.span_id)


def test_each_model_load_has_its_steps_under_one_span(traced: Traced) -> None:
    def loads(received: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [span for span in received if span.name == "model load"]

    received = traced.spans.wait(lambda spans: len(loads(spans)) >= 2)
    by_model = {span.attributes["sealserve.model.name"]: span for span in loads(received)}
    demo = by_model["demo"]
    assert demo.parent_span_id == ""  # a root: nothing asked for this load
    assert demo.attributes["sealserve.model.version"] == "1.0.0"
    steps = {span.name: span for span in received if span.parent_span_id == demo.span_id}
    assert set(steps) == {"fetch", "verify", "trial", "load"}
    assert steps["fetch"].end <= steps["verify"].start <= steps["verify"].end <= steps["trial"].start <= steps["trial"].end
    assert steps["trial"].end <= steps["load"].start <= steps["load"].end <= demo.end
    assert "tests.support.seed_model.ThresholdRiskModel" in by_model


def test_parentbased_ratio_sampling_over_otlp_grpc(workspace: Workspace, tmp_path: Path) -> None:
    """2,000 root requests at 0.25: the share exported lies in [0.20, 0.30] (5 standard deviations either side); a
    caller's sampled flag is followed either way. The gRPC exporter carries them, and the shutdown flushes them."""
    config = workspace.config(workspace.root / "sampled.yaml", {"name": "demo"})
    roots = 2000
    with grpc_receiver() as (endpoint, spans):
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
        }
        kept, dropped = Caller.new(), Caller.new(sampled=False)
        with serve(config, tmp_path, env=env) as server:
            local = threading.local()

            def live(_: int) -> int:
                if not hasattr(local, "client"):
                    local.client = server.client()
                return int(local.client.get("/api/health").status_code)

            with ThreadPoolExecutor(max_workers=8) as pool:
                assert set(pool.map(live, range(roots))) == {200}
            for caller in (kept, dropped):
                assert httpx.post(f"{server.url}/api/models/demo/prediction", json=RECORD, headers=caller.headers).status_code == 200
            wait_until(lambda: len(access_lines(server)) >= roots + 2, timeout=10)
            lines = access_lines(server)
        received = spans.all()
    share = sum(span.name == "GET /api/health" and span.parent_span_id == "" for span in received) / roots
    assert 0.20 <= share <= 0.30, share
    assert {span.name for span in received if span.trace_id == kept.trace_id} >= {"POST /api/models/{name}/prediction", "model call"}
    assert [span for span in received if span.trace_id == dropped.trace_id] == []
    health = [line for line in lines if line["path"] == "/api/health"]
    named = {(line["trace_id"], line["span_id"]) for line in health if "trace_id" in line}
    assert len(health) == roots
    assert all(re.fullmatch("[0-9a-f]{32}", trace_id) and re.fullmatch("[0-9a-f]{16}", span_id) for trace_id, span_id in named)
    # a kept root's line names its exported span; a dropped root's names nothing (its trace exists nowhere else)
    assert named == {(span.trace_id, span.span_id) for span in received if span.name == "GET /api/health"}
    # a caller's trace is named whether the caller sampled it or not
    assert [line["trace_id"] for line in lines if line["path"] == "/api/models/demo/prediction"] == [kept.trace_id, dropped.trace_id]


def access_lines(server: RunningServer) -> list[dict[str, Any]]:
    return [json.loads(text) for text in server.log().splitlines() if text.startswith("{") and '"sealserve.access"' in text]


def test_every_worker_exports_and_its_shutdown_flushes(workspace: Workspace, tmp_path: Path) -> None:
    """With `--workers 2` each worker has its exporter; spans wait in its queue (a 10-minute schedule) until the
    drain flushes them."""
    config = workspace.config(workspace.root / "workers.yaml", {"name": "demo"})
    callers = [Caller.new() for _ in range(40)]
    with http_receiver() as (endpoint, spans):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
        with serve(config, tmp_path, env=env, extra_args=("--workers", "2")) as server, server.fresh_client() as fresh:
            wait_until(lambda: server.log().count("Application startup complete") >= 2, timeout=120)
            for caller in callers:  # each on a new connection, so the kernel hands them to both workers
                assert fresh.post("/api/models/demo/prediction", json=RECORD, headers=caller.headers).status_code == 200
            assert spans.exports == 0
        received = spans.all()
    servers = {span.trace_id: span for span in received if span.parent_span_id in {caller.span_id for caller in callers}}
    assert set(servers) == {caller.trace_id for caller in callers}
    assert len({span.resource["process.pid"] for span in servers.values()}) == 2


def test_a_ctrl_c_to_the_whole_process_group_still_exports_every_span(workspace: Workspace, tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals every process of the group, the exporter process too: it ignores the signal, exports
    what the server shipped it (held by a 10-minute schedule until then) when the server ends, and ends with it."""
    config = workspace.config(workspace.root / "group.yaml", {"name": "demo"})
    callers = [Caller.new() for _ in range(20)]
    with http_receiver() as (endpoint, spans):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
        with serve(config, tmp_path, env=env, new_session=True) as server:
            for caller in callers:
                assert httpx.post(f"{server.url}/api/models/demo/prediction", json=RECORD, headers=caller.headers).status_code == 200
            group = server.process.pid
            assert len(processes_in(group)) >= 2  # the server and its exporter process (the trial runner too)
            assert spans.exports == 0
            os.killpg(group, signal.SIGINT)
            server.process.wait(timeout=30)
            wait_until(lambda: not processes_in(group), timeout=30)
        received = spans.all()
    servers = {span.trace_id for span in received if span.parent_span_id in {caller.span_id for caller in callers}}
    assert servers == {caller.trace_id for caller in callers}


def processes_in(group: int) -> list[int]:
    return processes_where(lambda fields: int(fields[2]) == group)


def processes_where(chosen: Callable[[list[str]], bool]) -> list[int]:
    """The live (not zombie) processes whose /proc stat fields after the name (state, ppid, pgrp, …) are `chosen`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and chosen(fields):
            found.append(int(stat.parent.name))
    return found


def test_off_exports_nothing(workspace: Workspace, tmp_path: Path) -> None:
    """OTEL_SDK_DISABLED wins over a configured endpoint: nothing reaches the receiver, access lines carry no trace."""
    with http_receiver() as (endpoint, spans):
        config = workspace.config(workspace.root / "off.yaml", {"name": "demo"}, observability={"tracing": {"endpoint": endpoint}})
        caller = Caller.new()
        with serve(config, tmp_path, env={"OTEL_SDK_DISABLED": "true", **QUICK_EXPORT}) as server:
            for protocol in ("native", "kserve_v1", "v2_rest", "seldon"):
                ask(protocol, Traced(server, spans, 0), {**caller.headers, "X-Request-ID": f"off-{protocol}"})
            wait_until(lambda: "off-seldon" in server.log(), timeout=10)
        assert spans.exports == 0
        assert "trace_id" not in server.log()


def exporters() -> list[str]:
    """This process's span shipper threads and live exporter processes (tracing/shipping.py)."""
    threads = [thread.name for thread in threading.enumerate() if thread.name.startswith(("OtelBatch", "sealserve-trace"))]
    children = [pid for pid in processes_where(lambda fields: int(fields[1]) == os.getpid())]
    exporting = [pid for pid in children if b"tracing.shipping" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return threads + ["exporter process"] * len(exporting)


def test_off_builds_no_provider_and_no_exporter(workspace: Workspace) -> None:
    config = load_config(workspace.config(workspace.root / "in-process.yaml", {"name": "demo"}))
    before = exporters()
    app = create_app(config, environ={})
    assert app.state.tracing is None
    assert app.state.dataplane.tracer is None
    assert app.state.registry.tracer is None
    with TestClient(app) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=30)
        assert client.post("/api/models/demo/prediction", json=RECORD).status_code == 200
        assert exporters() == before
    on = create_app(config, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})  # the control: on starts both
    try:
        assert sorted(exporters()) == sorted([*before, "sealserve-trace-shipper", "exporter process"])
    finally:
        on.state.tracing.close(timeout=30)
    assert exporters() == before
