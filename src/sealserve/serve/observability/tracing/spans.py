"""Request spans (docs/observability.md#tracing): one TracerProvider per app, never the global one.

A request's server span starts at the transport (`TraceRequests` for HTTP, `RpcSpans` for gRPC) from the W3C
`traceparent`/`tracestate` it carries; the data plane reports each sampled inference's stages (`end`), drawn as
decode, queue wait, model call and encode spans. A request's spans are field lists (fields.py), not SDK spans; the SDK
makes the model loads' spans, and exports all of them in an exporter process (shipping.py). Off, none of this is
built: no span objects, no exporter.
"""

from __future__ import annotations

import os
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
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealserve.serve.errors import ServingError
from sealserve.serve.observability.tracing.fields import ATTRIBUTES, CODE, DESCRIPTION, ENDED, NAME, Fields, child_fields, drawn
from sealserve.serve.observability.tracing.ids import TRACE_IDS, continued_ids, hex_ids, root_ids, root_low, span_id_of, trace_id_of
from sealserve.serve.observability.tracing.settings import TraceSettings
from sealserve.serve.request.dataplane import InferenceRequest, Stages
from sealserve.serve.request.protocols.v2_grpc import SERVICE

if TYPE_CHECKING:  # the SDK is imported only once tracing is on (it adds ~0.2 s to every start-up)
    from opentelemetry.sdk.trace.export import SpanExporter

CARRIED = {b"traceparent": "traceparent", b"tracestate": "tracestate"}
SAMPLED: ContextVar[RequestSpan | None] = ContextVar("sealserve_sampled_span", default=None)  # set only while a sampled request runs


class Tracing:
    """One app's (one worker's) provider, exporter and request spans; `close` flushes what is queued."""

    def __init__(self, settings: TraceSettings, exporter: SpanExporter | None = None) -> None:
        """Finished spans go to an exporter process (shipping.py), or to `exporter` in this process when given (tests)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from sealserve.serve.observability.tracing.shipping import LocalShipping, SpanShipper

        attributes = {**settings.resource, "process.pid": str(os.getpid())}
        self.sampling = settings.sampling
        resource = Resource.create(attributes)
        self.provider = TracerProvider(sampler=settings.sampling.sampler, resource=resource)
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
        if carrier:
            remote = trace.get_current_span(self.propagator.extract(carrier)).get_span_context()
            if remote.is_valid:
                ids = continued_ids(remote.trace_id)
                return self.started(name, ids, remote, attributes) if self.sampling.keeps(remote.trace_id, remote) else ServerSpan(ids)
        low = root_low()
        return self.started(name, root_ids(low), None, attributes) if self.sampling.keeps_root(low) else ServerSpan(None)

    def started(self, name: str, ids: int, remote: SpanContext | None, attributes: dict[str, Any] | None = None) -> ServerSpan:
        """The server span of a request the sampler keeps, with the ids (ids.py) its decision was made on."""
        span = RequestSpan(name, ids, remote, {} if attributes is None else dict(attributes))
        return ServerSpan(ids, span, trace.set_span_in_context(NonRecordingSpan(span.context)))

    def begin(self) -> Stages | None:
        """The stages of the current request's inference, when its trace is sampled (one context variable read otherwise)."""
        span = SAMPLED.get()
        return None if span is None else Stages(span, time.time_ns(), time.perf_counter())

    def end(self, request: InferenceRequest, stages: Stages, error: ServingError | None) -> None:
        """The spans of an inference's stages, drawn from their recorded times; encode stays open until the answer is sent."""
        server: RequestSpan = stages.parent
        attributes: dict[str, Any] = {"sealserve.model.name": request.model, "sealserve.protocol": request.protocol.value}
        if stages.decode is not None:
            self._drawn("decode", server, stages, stages.decode, attributes)
        if stages.queued is not None and stages.model is not None:
            self._drawn("queue wait", server, stages, (stages.queued, stages.model[0]), attributes)
        if stages.model is not None:
            served = stages.served
            model = {**attributes, "sealserve.model.rows": stages.rows, "sealserve.model.batch_rows": stages.batch_rows}
            if served is not None:
                model["sealserve.model.version"] = served.version
                runtime = getattr(served.model, "runtime_name", None)
                model["sealserve.model.runtime"] = runtime if isinstance(runtime, str) else "python"
            self._drawn("model call", server, stages, stages.model, model)
        if error is not None:  # the stages that finished are drawn; the server span says what failed
            server.fields[ATTRIBUTES]["error.type"] = error.code
            return
        self._encoding[id(server)] = child_fields("encode", server.fields, stages.at(stages.finished), None, attributes)

    def _drawn(self, name: str, server: RequestSpan, stages: Stages, bounds: tuple[float, float], attributes: dict[str, Any]) -> None:
        self.ship(child_fields(name, server.fields, stages.at(bounds[0]), stages.at(bounds[1]), attributes))

    def encoded(self, server: RequestSpan) -> None:
        """The answer is on its way: the request's encode span (if one is open) ends now."""
        encode = self._encoding.pop(id(server), None)
        if encode is not None:
            encode[ENDED] = time.time_ns()
            self.ship(encode)

    def ended(self, server: RequestSpan, failed: bool, description: str | None = None) -> None:
        """The request is answered: its encode span (if still open) and its server span end, marked as an error if `failed`."""
        self.encoded(server)
        if failed:
            server.fields[CODE], server.fields[DESCRIPTION] = StatusCode.ERROR.value, description
        server.fields[ENDED] = time.time_ns()
        self.ship(server.fields)

    def close(self, timeout: float = 5.0) -> None:
        """Export what is queued (within `timeout` seconds) and stop the exporter thread."""
        if self.shipper is not None:
            self.shipper.close(timeout)
        else:
            self.provider.force_flush(int(timeout * 1000))
        self.provider.shutdown()


class RequestSpan:
    """A sampled request's server span, kept as the fields it is shipped as (fields.py); `context` is what its stage
    spans and the calls the model makes continue."""

    __slots__ = ("context", "fields")

    def __init__(self, name: str, ids: int, remote: SpanContext | None, attributes: dict[str, Any]) -> None:
        random_id = remote.trace_flags.random_trace_id if remote is not None else True  # as the SDK marks them
        flags = TraceFlags(TraceFlags.SAMPLED | (TraceFlags.RANDOM_TRACE_ID if random_id else 0))
        state = remote.trace_state if remote is not None else None
        self.context = SpanContext(trace_id_of(ids), span_id_of(ids), False, flags, state)
        self.fields = drawn(name, self.context, remote, SpanKind.SERVER, time.time_ns(), attributes)


@dataclass(slots=True)
class ServerSpan:
    """A request's trace and span ids (ids.py; None for a root the sampler dropped), and for a sampled trace its span
    and the context to make current."""

    ids: int | None
    span: RequestSpan | None = None
    current: Context | None = None


class TraceRequests:
    """ASGI middleware, outermost: the server span of every HTTP request, current while the app answers it."""

    def __init__(self, app: ASGIApp, tracing: Tracing, logged: bool = True) -> None:
        """`logged`: access lines are written, so each request's ids go into its scope for them."""
        self.app, self.tracing, self.logged = app, tracing, logged
        self.keeps_root = tracing.sampling.keeps_root

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """A plain call, not a coroutine: a root request the sampler drops (the usual case) is handed on without a frame
        of its own, after one look at each header, one 64-bit draw and one comparison."""
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        for key, _ in scope["headers"]:
            if key in CARRIED:
                return self._begun(scope, receive, send, self.tracing.server_span(scope["method"], _carrier(scope)))
        low = root_low()
        if self.keeps_root(low):
            return self._begun(scope, receive, send, self.tracing.started(scope["method"], root_ids(low), None))
        return self.app(scope, receive, send)

    def _begun(self, scope: Scope, receive: Receive, send: Send, started: ServerSpan) -> Awaitable[None]:
        if self.logged and started.ids is not None:
            scope.setdefault("state", {})[TRACE_IDS] = started.ids
        if started.span is None or started.current is None:
            return self.app(scope, receive, send)
        return self._traced(scope, receive, send, started.span, started.current)

    async def _traced(self, scope: Scope, receive: Receive, send: Send, span: RequestSpan, current: Context) -> None:
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
            attributes = span.fields[ATTRIBUTES]
            attributes.update({"http.request.method": method, "url.path": scope["path"], "url.scheme": scope.get("scheme", "http")})
            route = getattr(scope.get("route"), "path", None)
            if isinstance(route, str):
                span.fields[NAME] = f"{method} {route}"
                attributes["http.route"] = route
            attributes["http.response.status_code"] = status
            tracing.ended(span, status >= 500)


@dataclass(frozen=True)
class RpcSpan:
    started: ServerSpan
    tokens: tuple[object, Token[RequestSpan | None]] | None  # None: not sampled, so nothing was made current


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
        """The call's ids for its access line (none for a root the sampler dropped)."""
        if call.started.ids is None:
            return {}
        trace_id, span_id = hex_ids(call.started.ids)
        return {"trace_id": trace_id, "span_id": span_id}

    def end(self, call: RpcSpan, code: grpc.StatusCode) -> None:
        span = call.started.span
        if span is None or call.tokens is None:
            return
        current, sampled = call.tokens
        otel_context.detach(current)  # type: ignore[arg-type]
        SAMPLED.reset(sampled)
        span.fields[ATTRIBUTES]["rpc.grpc.status_code"] = code.value[0]
        self.tracing.ended(span, code is not grpc.StatusCode.OK, code.name)


def _carrier(scope: Scope) -> dict[str, str]:
    return {CARRIED[key]: value.decode("latin-1") for key, value in scope["headers"] if key in CARRIED}


def _version() -> str:
    try:
        return metadata.version("sealserve")
    except metadata.PackageNotFoundError:
        return "0"
