"""An OTLP trace receiver in the test process, over HTTP/protobuf or gRPC, decoding with opentelemetry-proto."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.support.server import free_port, wait_until


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    start: int
    end: int
    resource: dict[str, Any]


def values(attributes: Any) -> dict[str, Any]:
    return {item.key: _value(item) for item in attributes}


def _value(item: KeyValue) -> Any:
    choice = item.value.WhichOneof("value")
    return getattr(item.value, choice) if choice else None


class Spans:
    """Every span received so far, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.exports = 0

    def add(self, request: Any) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = values(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.kind,
                            values(span.attributes),
                            span.status.code,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            resource,
                        )
                    )
        with self._lock:
            self._spans.extend(received)
            self.exports += 1

    def all(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.all() if span.trace_id == trace_id]

    def wait(self, condition: Callable[[list[ReceivedSpan]], bool], timeout: float = 20.0) -> list[ReceivedSpan]:
        wait_until(lambda: condition(self.all()), timeout=timeout)
        return self.all()


@contextmanager
def http_receiver() -> Iterator[tuple[str, Spans]]:
    """An OTLP/HTTP endpoint (POST /v1/traces, application/x-protobuf); yields its base URL and what it received."""
    spans = Spans()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            spans.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", spans
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def grpc_receiver() -> Iterator[tuple[str, Spans]]:
    """An OTLP/gRPC endpoint (TraceService/Export); yields its address (http://, so insecure) and what it received."""
    spans = Spans()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
            spans.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", spans
    finally:
        server.stop(grace=None).wait(10)
