"""The parts of inference events on their own, with fakes: the hook never waits, the builder's attributes and its SDK
fast path, redaction in every body shape, retries with backoff, the token file, TLS to the sink, and the HTTP client."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sealserve.errors import ConfigError
from sealserve.serve.config import BundleSource
from sealserve.serve.model_options import Events
from sealserve.serve.observability import sink as sink_module
from sealserve.serve.observability.cloud_events import REQUEST, RESPONSE, EventBuilder, EventOrigin, Message, encode
from sealserve.serve.observability.events import InferenceEvents, check_sinks
from sealserve.serve.observability.http_post import HttpPost, Post
from sealserve.serve.observability.records import InferenceRecord
from sealserve.serve.observability.redaction import REDACTED, Redaction
from sealserve.serve.observability.sink import BearerToken, EventSink
from sealserve.serve.request.dataplane import InferenceRequest
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.responses import JsonBodies
from tests.auth.test_tls import self_signed
from tests.support.server import wait_until
from tests.support.sink import RecordingSink

FEATURES = ("size", "count", "color")
RECORD = InferenceRecord("req-1", "demo", "1.0.0", Protocol.NATIVE, 1_700_000_000.0, 1_700_000_000.25, FEATURES)
ORIGIN = EventOrigin("http://10.0.0.7:8080/", "ml-team")


def fake_inference(request_id: str) -> tuple[InferenceRequest, Any]:
    request = InferenceRequest("demo", Protocol.NATIVE, lambda interface: [], request_id=request_id)
    result = SimpleNamespace(served=SimpleNamespace(name="demo", version="1.0.0"), seconds=0.001, interface=SimpleNamespace(names=FEATURES))
    return request, result


def event(own: dict[str, str]) -> Message:
    return Message({"content-type": "application/json"}, own, b"{}")


def registry_of(events: Events) -> Any:
    source = BundleSource(name="demo", store_url="file:///store", keyring=Path("keyring.json"), events=events)
    return SimpleNamespace(states=[SimpleNamespace(source=source)])


def test_the_hook_only_enqueues_and_a_full_queue_drops_and_counts_at_once() -> None:
    drops: list[tuple[str, str, int]] = []
    with RecordingSink() as sink:
        events = InferenceEvents(registry_of(Events(url=sink.url, queue=3)), ORIGIN, lambda *drop: drops.append(drop))
        started = time.perf_counter()
        for number in range(5):  # the sender has not started: nothing leaves the queue
            request, result = fake_inference(f"r{number}")
            events.answered(request, result, JsonBodies(b'{"size": 1}', b'{"outputs": []}'))
        assert time.perf_counter() - started < 0.5
        assert drops == [("demo", "queue_full", 2)] * 2  # two events (a request and a response) per request
        events.start()
        wait_until(lambda: len(sink.received) == 6, timeout=10)
        events.close()
    assert {event.headers["ce-id"] for event in sink.received} == {"r0", "r1", "r2"}


def test_close_drops_and_counts_what_it_cannot_send_within_its_bound() -> None:
    drops: list[tuple[str, str, int]] = []
    with RecordingSink() as sink:
        sink.answering.clear()
        events = InferenceEvents(registry_of(Events(url=sink.url, timeout=30, mode="request")), ORIGIN, lambda *drop: drops.append(drop))
        events.start()
        for number in range(3):
            events.answered(*fake_inference(f"r{number}"), JsonBodies(b"{}", b"{}"))
        wait_until(lambda: sink.received, timeout=10)
        started = time.perf_counter()
        events.close(flush_seconds=0.5)
        assert time.perf_counter() - started < 3
    assert {reason for _, reason, _ in drops} == {"shutdown"}
    assert sum(count for *_, count in drops) == 3


def test_the_builder_says_what_kserve_says_and_its_fast_path_equals_the_sdk() -> None:
    builder = EventBuilder(Events(url="http://sink/"), ORIGIN)
    messages = builder.messages(RECORD, JsonBodies(b'{"size": 7.5}', b'{"output": 1}'))
    assert [message.headers["ce-type"] for message in messages] == [REQUEST, RESPONSE]
    assert [message.body for message in messages] == [b'{"size": 7.5}', b'{"output": 1}']
    request, response = (message.headers for message in messages)
    assert request == {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": REQUEST,
        "ce-id": "req-1",
        "ce-source": "http://10.0.0.7:8080/",
        "ce-time": "2023-11-14T22:13:20.000+00:00",
        "ce-inferenceservicename": "demo",
        "ce-namespace": "ml-team",
        "ce-endpoint": "native",
        "ce-component": "predictor",
        "ce-modelversion": "1.0.0",
    }
    assert response["ce-time"] == "2023-11-14T22:13:20.250+00:00"
    for kind, at, message in ((REQUEST, RECORD.received, messages[0]), (RESPONSE, RECORD.answered, messages[1])):
        whole = encode(builder.attributes(kind, RECORD, at), message.body)  # the SDK encoding the event whole
        assert (message.headers, message.body) == (whole.headers, whole.body)
    odd = InferenceRecord("id with space", "demo", "1.0.0", Protocol.NATIVE, 0.0, 0.0, FEATURES)
    assert builder.message(REQUEST, odd, 0.0, b"{}") == encode(builder.attributes(REQUEST, odd, 0.0), b"{}")

    only = EventBuilder(Events(url="http://sink/", mode="response", source="urn:team:models"), EventOrigin("http://x/"))
    [message] = only.messages(RECORD, JsonBodies(b"{}", b"{}"))
    headers = message.headers
    assert headers["ce-type"] == RESPONSE
    assert headers["ce-source"] == "urn:team:models"
    assert "ce-namespace" not in headers


@pytest.mark.parametrize(
    ("protocol", "body", "expected"),
    [
        (Protocol.NATIVE, [{"size": 1, "color": "RED"}], [{"size": 1, "color": REDACTED}]),
        (
            Protocol.NATIVE,
            {"dataframe_split": {"columns": ["color", "size"], "data": [["RED", 1], ["BLUE", 2]], "index": [0, 1]}},
            {"dataframe_split": {"columns": ["color", "size"], "data": [[REDACTED, 1], [REDACTED, 2]], "index": [0, 1]}},
        ),
        (
            Protocol.NATIVE,
            {"inputs": {"size": [1, 2], "color": ["RED", "BLUE"]}},
            {"inputs": {"size": [1, 2], "color": [REDACTED, REDACTED]}},
        ),
        (Protocol.KSERVE_V1, {"instances": None, "inputs": [[1, 2, "RED"]]}, {"instances": None, "inputs": [[1, 2, REDACTED]]}),
        (
            Protocol.V2_REST,
            {"inputs": [{"name": "input-0", "shape": [2, 3], "data": [[1, 2, "A"], [3, 4, "B"]]}]},
            {"inputs": [{"name": "input-0", "shape": [2, 3], "data": [[1, 2, REDACTED], [3, 4, REDACTED]]}]},
        ),
        (
            Protocol.V2_GRPC,
            {"inputs": [{"name": "input-0", "shape": [2, 3], "data": [1, 2, "A", 3, 4, "B"]}]},
            {"inputs": [{"name": "input-0", "shape": [2, 3], "data": [1, 2, REDACTED, 3, 4, REDACTED]}]},
        ),
        (
            Protocol.SELDON,
            {"data": {"names": ["color", "size"], "tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}},
            {"data": {"names": ["color", "size"], "tensor": {"shape": [2, 2], "values": [REDACTED, 2, REDACTED, 4]}}},
        ),
        (Protocol.SELDON, {"data": {"ndarray": [1, 2, "RED"]}}, {"data": {"ndarray": [1, 2, REDACTED]}}),
    ],
)
def test_redaction_of_every_request_shape(protocol: Protocol, body: Any, expected: Any) -> None:
    assert Redaction(["color"]).request(protocol, body, FEATURES) == expected


def test_redaction_of_responses_by_output_name() -> None:
    redaction = Redaction(["predict_proba", "probabilities"])
    v2 = {"outputs": [{"name": "label", "data": ["a"]}, {"name": "predict_proba", "shape": [1, 2], "data": [[0.1, 0.9]]}]}
    assert redaction.response(Protocol.V2_REST, v2)["outputs"][1]["data"] == [[REDACTED, REDACTED]]
    native = {"model_name": "demo", "outputs": [{"prediction": "a", "probabilities": {"a": 0.9}}]}
    assert redaction.response(Protocol.NATIVE, native)["outputs"] == [{"prediction": "a", "probabilities": REDACTED}]


def test_failed_posts_are_retried_with_growing_jittered_delays_and_refusals_are_not(tmp_path: Path) -> None:
    delays: list[float] = []
    with RecordingSink(status=503) as sink:
        delivery = EventSink("demo", Events(url=sink.url, retries=3), sleep=delays.append)
        assert delivery.deliver(event({"ce-id": "x"}), time.monotonic() + 10) == "failed"
        assert len(sink.received) == 4
        assert [0.05 <= delay < 0.1 for delay in delays[:1]] == [True]
        assert all(0.5 * 0.1 * 2**attempt <= delay < 0.1 * 2**attempt for attempt, delay in enumerate(delays))
        sink.status = 401
        assert delivery.deliver(event({"ce-id": "y"}), time.monotonic() + 10) == "failed"
        assert len(sink.events("y")) == 1
        sink.status = 202
        assert delivery.deliver(event({"ce-id": "z"}), time.monotonic() + 10) is None
        delivery.close()


def test_a_budget_too_short_for_the_next_retry_gives_up_as_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sink_module, "BACKOFF", 5.0)
    with RecordingSink(status=500) as sink:
        delivery = EventSink("demo", Events(url=sink.url, retries=3), sleep=pytest.fail)
        assert delivery.deliver(event({}), time.monotonic() + 1) == "timeout"
        delivery.close()


def test_the_token_file_is_read_fresh_when_it_changes_and_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    token = BearerToken(path)
    assert token.header() == "Bearer first"
    path.write_text("second-and-longer")
    assert token.header() == "Bearer second-and-longer"
    path.unlink()
    assert token.header() == "Bearer second-and-longer"  # a Secret being swapped keeps the last token
    assert "second" not in repr(token)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        BearerToken(tmp_path / "empty").header()


def test_unreadable_sink_files_stop_start_up_and_fail_events_without_retrying(tmp_path: Path) -> None:
    settings = Events(url="http://127.0.0.1:9/", token_file=tmp_path / "missing-token")
    with pytest.raises(ConfigError, match="missing-token"):
        check_sinks([BundleSource(name="demo", store_url="file:///store", keyring=Path("keyring.json"), events=settings)])
    assert EventSink("demo", settings, sleep=pytest.fail).deliver(event({}), time.monotonic() + 10) == "failed"
    with pytest.raises(ConfigError, match="ca_file"):
        EventSink("demo", Events(url="https://127.0.0.1:9/", ca_file=tmp_path / "missing-ca.pem")).check()


def test_an_https_sink_is_verified_against_the_ca_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    with RecordingSink(tls=server_side) as sink:
        url = sink.url.replace("http://", "https://")
        trusted = EventSink("demo", Events(url=url, ca_file=cert, retries=0))
        assert trusted.deliver(event({"ce-id": "tls"}), time.monotonic() + 10) is None
        trusted.close()
        untrusted = EventSink("demo", Events(url=url, retries=0))
        assert untrusted.deliver(event({"ce-id": "nope"}), time.monotonic() + 10) == "failed"
        untrusted.close()
    assert [event.headers["ce-id"] for event in sink.received] == ["tls"]


def test_the_http_client_pipelines_reads_chunked_answers_and_reopens_connections_the_sink_closed() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    scripts = [  # the answers each accepted connection gives, one per request read; then it closes
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nokay\r\n0\r\n\r\n",
            b"HTTP/1.1 202 OK\r\nContent-Length: 2\r\n\r\nok",
        ],
        [b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"],
        [b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"],
    ]
    seen: list[list[bytes]] = []

    def serve() -> None:
        for answers in scripts:
            connection, _ = listener.accept()
            reader, ids = connection.makefile("rb"), []
            seen.append(ids)
            for answer in answers:
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"ce-id:"):
                        ids.append(line.split(b":")[1].strip())
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reader.read(length)
                connection.sendall(answer)
            reader.close()
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = HttpPost(f"http://127.0.0.1:{listener.getsockname()[1]}/path?q=1")
    posts = [Post(({"content-type": "application/json"},), {"ce-id": name}, b"{}") for name in ("a", "b", "c")]
    assert client.post_all(posts, 5) == ([200, 202, 201], None)  # c was in flight when the first connection closed
    assert not client.pipelining
    assert client.post({"ce-id": "d"}, b"{}", 5) == 204  # the second connection had closed while idle: reopened
    thread.join(5)
    listener.close()
    assert seen == [[b"a", b"b"], [b"c"], [b"d"]]
    with pytest.raises(ValueError, match="line break"):
        client.post({"ce-id": "a\r\nInjected: yes"}, b"{}", 5)
