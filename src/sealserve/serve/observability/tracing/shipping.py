"""Finished spans leave the server's process: `SpanShipper` keeps each ended span's fields and, every TICK seconds,
sends what ended meanwhile to an exporter process, where the SDK's batch processor and the OTLP exporter encode and
send them. The encoding is most of what a sampled request's tracing costs; out there it never holds the server's GIL.

One exporter process per worker: a fresh interpreter running this module (never a fork of the threaded server),
reading one JSON line per shipment on its stdin. It ignores SIGINT and SIGTERM and ends when its stdin closes (the
worker done, or gone), after exporting what it holds, so a Ctrl-C or a container stop that signals the whole process
group still flushes. The OTEL_BSP_* and OTEL_EXPORTER_OTLP_* variables apply in it, as they would in process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import IO, TYPE_CHECKING, Any

import orjson
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from sealserve.serve.observability.tracing.fields import Fields, fields_of

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span
    from opentelemetry.sdk.trace.export import SpanExporter

    from sealserve.serve.observability.tracing.settings import TraceSettings

logger = logging.getLogger("sealserve.tracing")

TICK = 0.05  # seconds between two shipments
DEFAULT_QUEUE = 2048  # OTEL_BSP_MAX_QUEUE_SIZE's default: spans waiting to be shipped; past it they are dropped


class SpanShipper(SpanProcessor):
    """The provider's span processor: `on_end` only appends the span's fields to a deque; a thread ships them."""

    def __init__(self, settings: TraceSettings, resource: dict[str, str], version: str) -> None:
        argv = [sys.executable, "-m", __name__, settings.endpoint, settings.protocol, version, orjson.dumps(resource).decode()]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE)
        assert self.process.stdin is not None
        self._pipe: IO[bytes] = self.process.stdin
        self._ended: deque[Fields] = deque()
        self._limit = _int_variable("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE)
        self.dropped = 0
        self._closed = threading.Event()
        self._broken = False
        self._sending = threading.Lock()
        self._thread = threading.Thread(target=self._ship_forever, name="sealserve-trace-shipper", daemon=True)
        self._thread.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.ship(fields_of(span))

    def ship(self, fields: Fields) -> None:
        """A finished span's fields (an SDK span's, or a stage span drawn without the SDK: `stage_fields`)."""
        if len(self._ended) >= self._limit:
            self.dropped += 1
            return
        self._ended.append(fields)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Ships what ended; the exporter process exports it on its own schedule (and all of it when it ends)."""
        return self._ship()

    def shutdown(self) -> None:
        self.close()

    def close(self, timeout: float = 5.0) -> None:
        """Ship what is left, close the pipe (the exporter process then exports everything and ends), wait `timeout` s."""
        if self._closed.is_set():
            return
        deadline = time.monotonic() + timeout
        self._closed.set()
        self._thread.join(timeout)
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("the trace exporter did not finish within %.1f s; its last spans are lost", timeout)
            self.process.kill()
            self.process.wait()
        if self.dropped:
            logger.warning("%d spans were dropped: the trace exporter could not keep up", self.dropped)

    def _ship_forever(self) -> None:
        while not self._closed.wait(TICK):
            self._ship()
        self._ship()
        with contextlib.suppress(OSError):
            self._pipe.close()

    def _ship(self) -> bool:
        batch: list[Fields] = []
        while True:
            try:
                batch.append(self._ended.popleft())
            except IndexError:
                break
        with self._sending:  # the thread and a force_flush may both ship: one line at a time on the pipe
            if self._broken:
                self.dropped += len(batch)
                return False
            if not batch:
                return True
            try:
                self._pipe.write(orjson.dumps(batch, default=str, option=orjson.OPT_APPEND_NEWLINE))
                self._pipe.flush()
            except (OSError, ValueError):
                self._broken = True
                self.dropped += len(batch)
                logger.error("the trace exporter process is gone; spans are dropped from now on")
                return False
            return True


class LocalShipping:
    """`ship` for an exporter in this process (tests): each span's fields, read again, go to the SDK's batch processor."""

    def __init__(self, processor: SpanProcessor, resource: Any, version: str) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.processor, self.resource, self.scope = processor, resource, InstrumentationScope("sealserve", version)

    def ship(self, fields: Fields) -> None:
        self.processor.on_end(readable(fields, self.resource, self.scope))


def readable(fields: Fields, resource: Any, scope: Any) -> ReadableSpan:
    """The span again, as the exporter reads it."""
    name, trace_id, span_id, flags, state, parent_id, parent_remote, kind, start, end, attributes, code, description, events = fields
    trace_flags, trace_state = TraceFlags(flags), TraceState.from_header([state]) if state else None
    context = SpanContext(int(trace_id, 16), int(span_id, 16), False, trace_flags, trace_state)
    parent = SpanContext(int(trace_id, 16), int(parent_id, 16), parent_remote, trace_flags, trace_state) if parent_id else None
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=[Event(event_name, event_attributes, timestamp) for event_name, event_attributes, timestamp in events],
        kind=SpanKind(kind),
        status=Status(StatusCode(code), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def export_forever(lines: IO[bytes], endpoint: str, protocol: str, version: str, resource: dict[str, str]) -> None:
    """The exporter process: spans in from `lines`, out over OTLP, until `lines` ends (the worker done or gone)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    processor = BatchSpanProcessor(exporter_of(endpoint, protocol))
    made, scope = Resource.create(resource), InstrumentationScope("sealserve", version)
    for line in lines:
        try:
            batch = orjson.loads(line)
        except orjson.JSONDecodeError:  # a worker killed in the middle of a line
            break
        for fields in batch:
            processor.on_end(readable(fields, made, scope))
    processor.force_flush()
    processor.shutdown()  # type: ignore[no-untyped-call]


def exporter_of(endpoint: str, protocol: str) -> SpanExporter:
    """The OTLP exporter; headers, timeouts, compression and certificates come from the OTEL_EXPORTER_OTLP_* variables."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=endpoint)


def _int_variable(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, "")))
    except ValueError:
        return default


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    export_forever(sys.stdin.buffer, sys.argv[1], sys.argv[2], sys.argv[3], orjson.loads(sys.argv[4]))
