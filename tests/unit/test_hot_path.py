"""The single-request shortcuts answer exactly what the general code answers: the body reader without a timer when the
body is already there, the model answer with headers encoded once, a single record's probabilities without columns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.requests import ClientDisconnect, Request

from sealserve.runtime.encoders import _with_probabilities
from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request.http_body import read_json_body
from sealserve.serve.request.responses import JsonAnswer, json_response, model_headers


def request_of(messages: list[dict[str, Any]], *, gap: float = 0.0, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    """A request whose body messages come one by one, each `gap` seconds after the previous one (0: already there)."""
    queue = iter(messages)

    async def receive() -> dict[str, Any]:
        if gap:
            await asyncio.sleep(gap)
        return next(queue, {"type": "http.disconnect"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or [(b"content-type", b"application/json")]}
    return Request(scope, receive)


def chunks(*parts: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": part, "more_body": index < len(parts) - 1} for index, part in enumerate(parts)]


def read(request: Request, limits: RequestLimits) -> bytes:
    return asyncio.run(read_json_body(request, limits))


def test_a_body_already_there_and_one_that_arrives_in_parts_read_alike() -> None:
    limits = RequestLimits(body_timeout=5.0)
    assert read(request_of(chunks(b'{"a": 1}')), limits) == b'{"a": 1}'
    assert read(request_of(chunks(b'{"a"', b": ", b"1}"), gap=0.01), limits) == b'{"a": 1}'


def test_a_body_that_stops_arriving_is_refused_408_at_its_deadline() -> None:
    limits = RequestLimits(body_timeout=0.2)
    assert read(request_of(chunks(b'{"a"', b": 1}"), gap=0.05), limits) == b'{"a": 1}'  # positive control: in time
    loop = asyncio.new_event_loop()
    started = loop.time()
    with pytest.raises(ServingError) as refused:
        loop.run_until_complete(read_json_body(request_of(chunks(b'{"a"', b": 1}"), gap=0.15), limits))
    took = loop.time() - started
    loop.close()
    assert (refused.value.status, refused.value.code) == (408, "request_timeout")
    assert 0.2 <= took < 2.0  # the second part would have come at 0.3 s and completed the body


def test_an_oversized_body_is_413_and_a_gone_client_is_a_disconnect() -> None:
    limits = RequestLimits(max_body_bytes=8, body_timeout=5.0)
    rest = chunks(b"x" * 6, b"y" * 6, b"z" * 4)
    request = request_of(rest)
    with pytest.raises(ServingError) as refused:
        read(request, limits)
    assert (refused.value.status, refused.value.message) == (413, "request body exceeds 8 bytes")
    assert asyncio.run(request.receive()) == {"type": "http.disconnect"}  # type: ignore[arg-type]  # the rest was drained
    with pytest.raises(ClientDisconnect):
        read(request_of([{"type": "http.request", "body": b"{", "more_body": True}]), limits)
    typed = request_of(chunks(b"{}"), headers=[(b"content-type", b"text/csv; charset=utf-8")])
    with pytest.raises(ServingError) as unsupported:
        read(typed, limits)
    assert (unsupported.value.status, unsupported.value.message) == (415, "expected application/json, got text/csv")


def test_a_model_answer_has_the_body_and_headers_of_the_general_json_response() -> None:
    served = ServedModel("iris", SimpleNamespace(), "1.2.0", datetime.now(UTC))
    content = {"model_name": "iris", "model_version": "1.2.0", "output": {"prediction": "setosa", "score": np.float32(0.5)}}
    general = json_response(content, headers=model_headers(served))
    for _ in range(2):  # the second answer reuses the headers encoded for the first
        answer = JsonAnswer(content, served)
        assert (answer.status_code, answer.body, answer.raw_headers) == (general.status_code, general.body, general.raw_headers)
    assert [key for key, _ in answer.raw_headers] == [b"x-model-name", b"x-model-version", b"content-length", b"content-type"]


@pytest.mark.parametrize("labels", [["no", "yes"], ["a", "b", "c"], ["w", "x", "y", "z"]])
def test_a_single_record_has_the_probabilities_a_batch_gives_its_row(labels: list[str]) -> None:
    probabilities = np.random.default_rng(0).dirichlet(np.ones(len(labels)), size=3)
    batch = _with_probabilities(["p", "q", "r"], labels, SimpleNamespace(probabilities=probabilities))  # type: ignore[arg-type]
    for row in range(3):
        one = _with_probabilities([["p", "q", "r"][row]], labels, SimpleNamespace(probabilities=probabilities[row : row + 1]))  # type: ignore[arg-type]
        assert one == [batch[row]]
        assert orjson.dumps(one) == orjson.dumps([batch[row]])


class PublicOnly:
    """An ONNX session seen only through its public methods (no inner session): predictions take onnxruntime's wrapper."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calls = 0

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def run(self, output_names: list[str], feed: dict[str, Any]) -> Any:
        self.calls += 1
        return self.session.run(output_names, feed)


def test_an_onnx_model_predicts_the_same_through_its_inner_session_as_through_the_wrapper() -> None:
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier

    from sealserve.runtime.predict import onnx_runtime

    X, y = make_classification(n_samples=200, n_features=5, n_classes=3, n_informative=3, random_state=0)
    X = X.astype(np.float32)
    onnx_model = to_onnx(GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, y), X[:1], options={"zipmap": False})
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    wrapped = PublicOnly(session)
    fast, public = onnx_runtime(session), onnx_runtime(wrapped)
    for rows in (X[:1], X):
        ours, theirs = fast(rows), public(rows)
        np.testing.assert_array_equal(ours.values, theirs.values)
        np.testing.assert_array_equal(ours.probabilities, theirs.probabilities)  # type: ignore[arg-type]
    assert wrapped.calls == 2  # positive control: the public path did run through `run`
    with pytest.raises(Exception, match=r"(?i)input"):  # a wrong input is refused by onnxruntime as before
        fast(np.zeros((1, 4)))


class RecordingTransport(asyncio.Transport):
    """The connection as the protocol sees it: what it writes, when (the loop's clock), and whether it closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop, self.writes, self.closed = loop, [], False  # type: ignore[var-annotated]
        self.writes_before_close: int | None = None

    def write(self, data: Any) -> None:
        self.writes.append((self.loop.time(), bytes(data)))

    def close(self) -> None:
        if not self.closed:
            self.writes_before_close = len(self.writes)
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def exchange(app: Any, request: bytes, *, shutdown: bool = False) -> RecordingTransport:
    """One request through sealserve's uvicorn protocol on a recorded connection, until the app has answered; with
    `shutdown`, the server's graceful shutdown reaches the connection right then, before the loop turns again."""
    import uvicorn
    from uvicorn.server import ServerState

    from sealserve.serve.request.http_protocol import http_protocol

    loop = asyncio.new_event_loop()
    protocols: list[Any] = []

    async def answer_then_shut_down(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        if shutdown:  # in the same step of the loop as the answer's last send
            protocols[0].shutdown()

    config = uvicorn.Config(answer_then_shut_down, lifespan="off", log_level="warning")
    config.load()
    protocol = http_protocol(10.0)(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    protocols.append(protocol)
    transport = RecordingTransport(loop)
    protocol.connection_made(transport)
    protocol.data_received(request)
    loop.run_until_complete(asyncio.wait_for(asyncio.gather(*protocol.tasks), 5))
    loop.run_until_complete(asyncio.sleep(0))  # the loop's next turn
    protocol.connection_lost(None)
    loop.close()
    return transport


def test_a_response_head_and_body_leave_in_one_write_and_a_late_body_does_not_hold_the_head() -> None:
    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        if scope["path"] == "/late":
            await asyncio.sleep(0.2)
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
        await send({"type": "http.response.body", "body": b"{}"})

    asked = b"POST /now HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    now = exchange(answer, asked)
    assert len(now.writes) == 1
    head, _, body = now.writes[0][1].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-type: application/json" in head
    assert body == b"2\r\n{}\r\n0\r\n\r\n"
    late = exchange(answer, asked.replace(b"/now", b"/late"))
    sent = b"".join(data for _, data in late.writes)
    assert sent.partition(b"\r\n\r\n")[2] == b"1\r\n{\r\n2\r\n{}\r\n0\r\n\r\n"  # every byte, in order
    assert late.writes[0][1].endswith(b"\r\n\r\n")
    assert late.writes[1][0] - late.writes[0][0] >= 0.15


def test_an_answer_is_on_the_wire_before_a_shutdown_that_follows_it_at_once() -> None:
    """Nothing is held past a response: a drain that closes the connection right after the answer (GET, and HEAD, whose
    head goes out alone) closes it after every byte of it, not before a write still waiting for the loop's next turn."""

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    for method, body in ((b"GET", b"{}"), (b"HEAD", b"")):
        wire = exchange(answer, method + b" /x HTTP/1.1\r\nhost: x\r\n\r\n", shutdown=True)
        assert wire.closed
        assert wire.writes_before_close is not None
        sent = b"".join(data for _, data in wire.writes[: wire.writes_before_close])
        assert sent.startswith(b"HTTP/1.1 200 OK\r\n"), method
        assert sent.partition(b"\r\n\r\n")[2] == body, method
