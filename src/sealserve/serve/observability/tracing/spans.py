"""Request spans (docs/observability.md#tracing): one TracerProvider per app, never the global one.

A request's server span starts at the transport (`TraceRequests` for HTTP, `RpcSpans` for gRPC) from the W3C
`traceparent`/`tracestate` it carries; the data plane reports each sampled inference's stages (`end`), drawn as
decode, queue wait, model call and encode spans. Finished spans go to an exporter process (shipping.py). Off, none of
this is built: no span objects, no exporter.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealserve.serve.errors import ServingError
from sealserve.serve.observability.tracing.fields import ENDED, Fields, stage_fields
from sealserve.serve.observability.tracing.settings import TraceSettings
from sealserve.serve.request.dataplane import InferenceRequest, Stages
from sealserve.serve.request.protocols.v2_grpc import SERVICE

if TYPE_CHECKING:  # the SDK is imported only once tracing is on (it adds ~0.2 s to every start-up)
    from opentelemetry.sdk.trace.export import SpanExporter

CARRIED = {b"traceparent": "traceparent", b"tracestate": "tracestate"}
EMPTY = Context()
SAMPLED: ContextVar[Span | None] = ContextVar("sealserve_sampled_span", default=None)  # set only while a sampled request runs


class Tracing:
    """One app's (one worker's) provider, exporter and request spans; `close` flushes what is queued."""

    def __init__(self, settings: TraceSettings, exporter: SpanExporter | None = None) -> None:
        """Finished spans go to an exporter process (shipping.py), or to `exporter` in this process when given (tests)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from sealserve.serve.observability.tracing.shipping import LocalShipping, SpanShipper

        attributes = {**settings.resource, "process.pid": str(os.getpid())}
        self.sampling, self.ids = settings.sampling, PresetTraceIds()
        resource = Resource.create(attributes)
        self.provider = TracerProvider(sampler=settings.sampling.sampler, resource=resource, id_generator=self.ids)  # type: ignore[arg-type]
        self.shipper = SpanShipper(settings, attributes, _version()) if exporter is None else None
        if self.shipper is not None:
            self.provider.add_span_processor(self.shipper)
            self.ship: Callable[[Fields], None] = self.shipper.ship
        else:
            processor = BatchSpanProcessor(exporter)  # type: ignore[arg-type]
            self.provider.add_span_processor(processor)
            self.ship = LocalShipping(processor, resource, _version()).ship
        self.tracer = self.provider.get_tracer("sealserve", _version())
        self.propagator = TraceContextTextMapPropagator()
        self._encoding: dict[int, Fields] = {}  # a server span's open encode span, by the server span's id

    def server_span(self, name: str, carrier: dict[str, str], attributes: dict[str, Any] | None = None) -> ServerSpan:
        """A request's server span, continuing the trace `carrier` names; a trace the sampler drops gets its ids only:
        no span object, nothing made current."""
        parent, remote = EMPTY, None
        if carrier:
            parent = self.propagator.extract(carrier)
            remote = trace.get_current_span(parent).get_span_context()
            if not remote.is_valid:
                remote = None
        trace_id = remote.trace_id if remote is not None else random.getrandbits(128) or 1
        if not self.sampling.keeps(trace_id, remote):
            return ServerSpan(trace_id, random.getrandbits(64) or 1)
        if remote is None:
            self.ids.preset.trace_id = trace_id  # the SDK asks its sampler again, about the same trace id
        span = self.tracer.start_span(name, parent, kind=SpanKind.SERVER, attributes=attributes)
        context = span.get_span_context()
        return ServerSpan(context.trace_id, context.span_id, span, trace.set_span_in_context(span, parent))

    def begin(self) -> Stages | None:
        """The stages of the current request's inference, when its trace is sampled (one context variable read otherwise)."""
        span = SAMPLED.get()
        return None if span is None else Stages(span, time.time_ns(), time.perf_counter())

    def end(self, request: InferenceRequest, stages: Stages, error: ServingError | None) -> None:
        """The spans of an inference's stages, drawn from their recorded times; encode stays open until the answer is sent."""
        parent: SpanContext = stages.parent.get_span_context()
        attributes: dict[str, Any] = {"sealserve.model.name": request.model, "sealserve.protocol": request.protocol.value}
        if stages.decode is not None:
            self._drawn("decode", parent, stages, stages.decode, attributes)
        if stages.queued is not None and stages.model is not None:
            self._drawn("queue wait", parent, stages, (stages.queued, stages.model[0]), attributes)
        if stages.model is not None:
            served = stages.served
            model = {**attributes, "sealserve.model.rows": stages.rows, "sealserve.model.batch_rows": stages.batch_rows}
            if served is not None:
                model["sealserve.model.version"] = served.version
                runtime = getattr(served.model, "runtime_name", None)
                model["sealserve.model.runtime"] = runtime if isinstance(runtime, str) else "python"
            self._drawn("model call", parent, stages, stages.model, model)
        if error is not None:  # the stages that finished are drawn; the server span says what failed
            stages.parent.set_attribute("error.type", error.code)
            return
        self._encoding[id(stages.parent)] = stage_fields("encode", parent, stages.at(stages.finished), None, attributes)

    def _drawn(self, name: str, parent: SpanContext, stages: Stages, bounds: tuple[float, float], attributes: dict[str, Any]) -> None:
        self.ship(stage_fields(name, parent, stages.at(bounds[0]), stages.at(bounds[1]), attributes))

    def encoded(self, server: Span) -> None:
        """The answer is on its way: the request's encode span (if one is open) ends now."""
        encode = self._encoding.pop(id(server), None)
        if encode is not None:
            encode[ENDED] = time.time_ns()
            self.ship(encode)

    def close(self, timeout: float = 5.0) -> None:
        """Export what is queued (within `timeout` seconds) and stop the exporter thread."""
        if self.shipper is not None:
            self.shipper.close(timeout)
        else:
            self.provider.force_flush(int(timeout * 1000))
        self.provider.shutdown()


@dataclass(slots=True)
class ServerSpan:
    """A request's trace and span ids (for its access line), and for a sampled trace its span and the context to make current."""

    trace_id: int
    span_id: int
    span: Span | None = None
    current: Context | None = None

    def ids(self) -> tuple[str, str]:
        """The trace and span ids as the W3C header writes them (32 and 16 hex digits)."""
        return f"{self.trace_id:032x}", f"{self.span_id:016x}"


class TraceRequests:
    """ASGI middleware, outermost: the server span of every HTTP request, current while the app answers it."""

    def __init__(self, app: ASGIApp, tracing: Tracing, logged: bool = True) -> None:
        """`logged`: access lines are written, so each request's ids go into its scope for them."""
        self.app, self.tracing, self.logged = app, tracing, logged

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """A plain call, not a coroutine: a request whose trace is not sampled is handed on without a frame of its own."""
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        carrier: dict[str, str] = {}
        for key, value in scope["headers"]:
            if key in CARRIED:
                carrier[CARRIED[key]] = value.decode("latin-1")
        started = self.tracing.server_span(scope["method"], carrier)
        if self.logged:
            scope.setdefault("state", {})["trace"] = started
        if started.span is None or started.current is None:
            return self.app(scope, receive, send)
        return self._traced(scope, receive, send, started.span, started.current)

    async def _traced(self, scope: Scope, receive: Receive, send: Send, span: Span, current: Context) -> None:
        tracing, method = self.tracing, scope["method"]
        token, sampled = otel_context.attach(current), SAMPLED.set(span)
        status = 500

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                tracing.encoded(span)
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        finally:
            otel_context.detach(token)
            SAMPLED.reset(sampled)
            tracing.encoded(span)
            attributes = {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope.get("scheme", "http")}
            route = getattr(scope.get("route"), "path", None)
            if isinstance(route, str):
                span.update_name(f"{method} {route}")
                attributes["http.route"] = route
            span.set_attributes({**attributes, "http.response.status_code": status})
            if status >= 500:
                span.set_status(StatusCode.ERROR)
            span.end()


@dataclass(frozen=True)
class RpcSpan:
    started: ServerSpan
    tokens: tuple[object, Token[Span | None]] | None  # None: not sampled, so nothing was made current


class RpcSpans:
    """The server span of each gRPC call (the gRPC service's `tracing`), from the call's metadata."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def start(self, rpc: str, metadata: Iterable[tuple[str, Any]]) -> RpcSpan:
        carrier = {key: value for key, value in metadata if key in ("traceparent", "tracestate") and isinstance(value, str)}
        attributes = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": rpc}
        started = self.tracing.server_span(f"{SERVICE}/{rpc}", carrier, attributes)
        if started.span is None or started.current is None:
            return RpcSpan(started, None)
        return RpcSpan(started, (otel_context.attach(started.current), SAMPLED.set(started.span)))

    def ids(self, call: RpcSpan) -> dict[str, str]:
        trace_id, span_id = call.started.ids()
        return {"trace_id": trace_id, "span_id": span_id}

    def end(self, call: RpcSpan, code: grpc.StatusCode) -> None:
        span = call.started.span
        if span is None or call.tokens is None:
            return
        current, sampled = call.tokens
        otel_context.detach(current)  # type: ignore[arg-type]
        SAMPLED.reset(sampled)
        self.tracing.encoded(span)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            span.set_status(StatusCode.ERROR, code.name)
        span.end()


class PresetTraceIds:
    """The SDK's random ids (its IdGenerator interface), except a root's trace id already drawn for the sampler's
    question, handed over once (`preset.trace_id`) so the span carries the id the decision was made on."""

    def __init__(self) -> None:
        self.preset = threading.local()

    def generate_span_id(self) -> int:
        return random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self.preset, "trace_id", None)
        self.preset.trace_id = None
        return trace_id if trace_id is not None else random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True


def _version() -> str:
    try:
        return metadata.version("sealserve")
    except metadata.PackageNotFoundError:
        return "0"
