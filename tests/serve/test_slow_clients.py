"""A client that sends its body slowly is answered 408 and cut off after `limits.body_timeout`, on the real server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve

DEMO = b'{"size": 7.5, "count": 3, "color": "BLUE"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("slow")
    space = Workspace.create(root)
    space.publish("demo", "1.0.0")
    with serve(space.config(root / "service.yaml", {"name": "demo"}, limits={"body_timeout": 1.0}), root) as running:
        yield running


def exchange(server: RunningServer, declared: int, sent: bytes) -> tuple[bytes, float]:
    """Declare `declared` body bytes, send `sent`, then wait for the answer (a slow client sends nothing more)."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as client:
        head = f"POST /api/models/demo/prediction HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        client.sendall(f"{head}Content-Length: {declared}\r\n\r\n".encode() + sent)
        answer = read_response(client)
    return answer, time.perf_counter() - started


def read_response(client: socket.socket) -> bytes:
    """One whole HTTP response: the head, then as many body bytes as its Content-Length says (it may come in pieces)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed mid-body: {body!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_body_that_stops_arriving_is_answered_408_within_the_timeout(server: RunningServer) -> None:
    answer, seconds = exchange(server, declared=1000, sent=DEMO[:30])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within 1 seconds" in answer
    assert seconds < 5


def test_a_whole_body_is_answered_as_usual(server: RunningServer) -> None:
    answer, _ = exchange(server, declared=len(DEMO), sent=DEMO)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert (
        httpx.post(f"{server.url}/api/models/demo/prediction", content=DEMO, headers={"content-type": "application/json"}).status_code
        == 200
    )
