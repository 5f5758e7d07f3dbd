"""Slow clients on the real server: a body that stops arriving is answered 408 after `limits.body_timeout`, and a request
head (request line and headers) that does not arrive in full within `limits.header_timeout` of the connection opening,
or of a later request's first byte, is answered 408 and the connection closed (slowloris)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve

DEMO = b'{"size": 7.5, "count": 3, "color": "BLUE"}'
HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("slow")
    space = Workspace.create(root)
    space.publish("demo", "1.0.0")
    with serve(
        space.config(root / "service.yaml", {"name": "demo"}, limits={"body_timeout": 1.0, "header_timeout": HEADER_TIMEOUT}), root
    ) as running:
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


def connect(server: RunningServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def request_head(server: RunningServer) -> bytes:
    host = server.url.removeprefix("http://")
    lines = ["POST /api/models/demo/prediction HTTP/1.1", f"Host: {host}", "Content-Type: application/json", f"Content-Length: {len(DEMO)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def until_closed(client: socket.socket, trickle: bytes = b"", every: float = 0.2, deadline: float = 8.0) -> tuple[bytes, int]:
    """Everything the server sends until it closes the connection; meanwhile (like a slowloris) one more byte of
    `trickle` whenever `every` seconds pass without an answer. Returns the answer and how many bytes were trickled."""
    answer, sent = b"", 0
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        readable, _, _ = select.select([client], [], [], every)
        if readable:
            chunk = client.recv(65536)
            if not chunk:
                return answer, sent
            answer += chunk
        elif sent < len(trickle):
            client.sendall(trickle[sent : sent + 1])
            sent += 1
    raise AssertionError(f"the server kept the connection open for {deadline} s: {answer!r}")


def test_a_connection_that_never_sends_a_request_is_closed_at_the_header_deadline(server: RunningServer) -> None:
    started = time.monotonic()
    with connect(server) as client:
        answer, _ = until_closed(client)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 seconds" in answer
    assert HEADER_TIMEOUT <= time.monotonic() - started < HEADER_TIMEOUT + 3


def test_a_head_sent_a_byte_at_a_time_is_cut_off_however_busy_the_client_is(server: RunningServer) -> None:
    head = request_head(server)
    started = time.monotonic()
    with connect(server) as client:
        answer, sent = until_closed(client, trickle=head, every=0.1)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 5 <= sent < len(head)  # it kept sending, and the deadline did not move
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


def test_a_later_request_on_a_kept_alive_connection_has_the_same_deadline(server: RunningServer) -> None:
    head = request_head(server)
    with connect(server) as client:
        client.sendall(head + DEMO)
        assert read_response(client).startswith(b"HTTP/1.1 200")
        answer, sent = until_closed(client, trickle=head, every=0.1)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert sent < len(head)


def test_heads_that_arrive_in_time_are_served_on_one_connection(server: RunningServer) -> None:
    """Control: a head split over several reads, a pause under the deadline, and keep-alive all still work."""
    head = request_head(server)
    with connect(server) as client:
        for _ in range(3):
            client.sendall(head[:20])
            readable, _, _ = select.select([client], [], [], HEADER_TIMEOUT / 2)  # nothing to read: the server waits
            assert not readable
            client.sendall(head[20:] + DEMO)
            assert read_response(client).startswith(b"HTTP/1.1 200")
    assert httpx.get(f"{server.url}/api/health/ready").status_code == 200
