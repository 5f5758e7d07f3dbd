"""A local CloudEvents sink for tests: a threaded http.server on loopback that records every POST's headers and body,
and can hold its answers (a slow sink) until released."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ce(self) -> dict[str, str]:
        """The CloudEvents headers (ce-*) and the content type: what a binary-mode event says about itself."""
        return {name: value for name, value in self.headers.items() if name.startswith("ce-") or name == "content-type"}


class RecordingSink:
    """Answers `status` to each POST after recording it; while `answering` is clear, answers wait (up to 30 s)."""

    def __init__(self, port: int = 0, status: int = 202, tls: ssl.SSLContext | None = None) -> None:
        self.status = status
        self.received: list[Received] = []
        self.answering = threading.Event()
        self.answering.set()
        self._lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with sink._lock:
                    sink.received.append(Received({name.lower(): value for name, value in self.headers.items()}, body))
                sink.answering.wait(timeout=30)
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a sender that gave up closed its end while the answer waited

        self.server = Server(("127.0.0.1", port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def __enter__(self) -> RecordingSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.answering.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self, event_id: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.headers.get("ce-id") == event_id]

    def pair(self, event_id: str) -> tuple[Received, Received] | None:
        """The request and response events of one request id, once both arrived."""
        found = {item.headers.get("ce-type"): item for item in self.events(event_id)}
        request, response = found.get("org.kubeflow.serving.inference.request"), found.get("org.kubeflow.serving.inference.response")
        return (request, response) if request is not None and response is not None else None
