"""Open Inference Protocol (KServe V2) over gRPC: ``inference.GRPCInferenceService`` on a second port.

The message classes come from grpc_predict_v2.proto's compiled descriptor (shipped in
oip_v2_descriptor.py), loaded into a private descriptor pool: protobuf's default pool stays free for
tritonclient's or kserve's own ``inference.*`` classes in the same process. Handlers are registered
generically by method path, so no generated service stubs are needed either.

The server is grpcio's threaded server, started and stopped by the app's lifespan; it answers from
the same data plane and validation as the REST protocols. Outputs travel in
``raw_output_contents`` (as Triton answers, and as tritonclient reads them). Typed FP32/FP64 inputs
are read from their packed wire bytes (`typed_values`), as cheaply as raw_input_contents.
"""

from __future__ import annotations

import logging
import threading
import time
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from sealserve.runtime.encoders import Output
from sealserve.serve.config import RequestLimits, Tls
from sealserve.serve.errors import MAX_ECHOED, ProtocolError, protocol_error_of
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.request.dataplane import DataPlane, InferenceRequest
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.principal import Principal
from sealserve.serve.request.protocols import v2_tensors as tensors
from sealserve.serve.request.protocols.grpc.oip_v2_descriptor import FILE_DESCRIPTOR
from sealserve.serve.request.request_ids import RequestIds

logger = logging.getLogger("sealserve.protocols.grpc")
SERVICE = "inference.GRPCInferenceService"
POOL = descriptor_pool.DescriptorPool()
POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(FILE_DESCRIPTOR))
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# packed `repeated float/double` contents: on the wire, the little-endian array itself
FIXED_WIDTH: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}

RPCS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
MESSAGES: dict[str, Any] = {
    name: message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"inference.{name}"))
    for rpc in RPCS
    for name in (f"{rpc}Request", f"{rpc}Response")
}


class RpcGate(typing.Protocol):
    """Who makes an RPC, and whether they may (the auth layer's GrpcGate): raises the 401/403 errors."""

    def admit(self, rpc: str, metadata: Any, peer: str) -> Principal | None: ...


class LineSink(typing.Protocol):
    """Where access lines go (the observability layer's AccessLines): one dict of fields per RPC."""

    def write(self, fields: dict[str, Any]) -> None: ...


class RpcTracing(typing.Protocol):
    """The server span of each call (the observability layer's RpcSpans): current while the RPC runs."""

    def start(self, rpc: str, metadata: Any) -> Any: ...

    def ids(self, started: Any) -> dict[str, str]: ...

    def end(self, started: Any, code: grpc.StatusCode) -> None: ...


@dataclass(frozen=True)
class Call:
    """What `guarded` learned about a call before its RPC runs: who makes it, and its request id."""

    principal: Principal | None
    request_id: str


Handler = Callable[[Any, grpc.ServicerContext, Call], Any]


class InferenceService:
    """The six RPCs; each only translates messages to core calls and back."""

    def __init__(
        self,
        registry: ModelRegistry,
        dataplane: DataPlane,
        limits: RequestLimits,
        server: tensors.ServerInfo,
        gate: RpcGate | None = None,
        lines: LineSink | None = None,
        tracing: RpcTracing | None = None,
    ) -> None:
        self.registry, self.dataplane, self.limits, self.server, self.gate, self.lines = registry, dataplane, limits, server, gate, lines
        self.tracing = tracing
        self.request_ids = RequestIds()
        self.answered = 0  # calls answered, any status: the drain reports how many finished during it
        self._answered_lock = threading.Lock()

    def count_answer(self) -> None:
        with self._answered_lock:
            self.answered += 1

    def server_live(self, request: Any, context: grpc.ServicerContext, call: Call) -> Any:
        return MESSAGES["ServerLiveResponse"](live=True)

    def server_ready(self, request: Any, context: grpc.ServicerContext, call: Call) -> Any:
        return MESSAGES["ServerReadyResponse"](ready=self.registry.ready)

    def model_ready(self, request: Any, context: grpc.ServicerContext, call: Call) -> Any:
        ready = self.registry.serving(request.name, request.version or None) is not None
        return MESSAGES["ModelReadyResponse"](ready=ready)

    def server_metadata(self, request: Any, context: grpc.ServicerContext, call: Call) -> Any:
        return MESSAGES["ServerMetadataResponse"](**self.server.as_dict())

    def model_metadata(self, request: Any, context: grpc.ServicerContext, call: Call) -> Any:
        served = self.dataplane.resolve(request.name, request.version or None)
        metadata = tensors.model_metadata(served, self.dataplane.interface(served))
        return MESSAGES["ModelMetadataResponse"](**metadata)

    def model_infer(self, request: Any, context: grpc.ServicerContext, call: Call) -> Any:
        asked = InferenceRequest(
            request.model_name,
            Protocol.V2_GRPC,
            lambda interface: tensors.batch(interface, decode_inputs(request), self.limits),
            version=request.model_version or None,
            request_id=call.request_id,
            principal=call.principal,
            headers=dict(context.invocation_metadata() or ()),
        )
        result = self.dataplane.infer_blocking(asked)
        served, predictions = result.served, result.outputs
        selected = result.interface.select([output.name for output in request.outputs])
        response = MESSAGES["ModelInferResponse"](model_name=served.name, model_version=served.version, id=request.id)
        encode_outputs(response, selected, predictions)
        if self.dataplane.answering:
            self.dataplane.answered(asked, result, RpcBodies(request, response))
        return response


@dataclass(frozen=True)
class RpcBodies:
    """A ModelInfer call as the V2 REST JSON bodies the same call would carry, rendered from its messages when asked."""

    request: Any
    response: Any

    def request_json(self) -> bytes:
        request = self.request
        body: dict[str, Any] = {"id": request.id} if request.id else {}
        if request.parameters:
            body["parameters"] = parameter_values(request.parameters)
        body["inputs"] = [_tensor_json(item) for item in decode_inputs(request)]
        if request.outputs:
            body["outputs"] = [{"name": output.name} for output in request.outputs]
        return orjson.dumps(body)

    def response_json(self) -> bytes:
        response = self.response
        body: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
        if response.id:
            body["id"] = response.id
        body["outputs"] = [
            _tensor_json(tensors.decode_raw(output.name, output.datatype, list(output.shape), raw))
            for output, raw in zip(response.outputs, response.raw_output_contents, strict=True)
        ]
        return orjson.dumps(body)


def _tensor_json(tensor: tensors.Tensor) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape), "data": tensors.as_list(tensor.values)}


def parameter_values(parameters: Any) -> dict[str, Any]:
    """InferParameter messages as the plain values REST carries."""
    choices = {key: value.WhichOneof("parameter_choice") for key, value in parameters.items()}
    return {key: getattr(parameters[key], choice) for key, choice in choices.items() if choice}


def decode_inputs(request: Any) -> list[tensors.Tensor]:
    """Inputs from raw_input_contents (one entry per input, in order) or from typed contents."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(400, f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    decoded = []
    for index, item in enumerate(request.inputs):
        shape = list(item.shape)
        if raw:
            decoded.append(tensors.decode_raw(item.name, item.datatype, shape, raw[index]))
            continue
        tensors.check_datatype(item.name, item.datatype)
        field = CONTENTS.get(item.datatype)
        if field is None:
            raise ProtocolError(400, f"input {item.name!r}: {item.datatype} travels in raw_input_contents only")
        values = typed_values(item, field)
        if not len(values):
            present = [descriptor.name for descriptor, _ in item.contents.ListFields()]
            if present:
                raise ProtocolError(400, f"input {item.name!r} has datatype {item.datatype}, but its values are in {present[0]}")
        if item.datatype == "BYTES":
            values = [tensors.text(item.name, value) for value in values]
        decoded.append(tensors.tensor(item.name, item.datatype, shape, values))
    return decoded


def typed_values(item: Any, field: str) -> list[Any] | np.ndarray:
    """A tensor's typed contents; FP32 and FP64 as one array read from their packed wire bytes, not a float per value."""
    values = getattr(item.contents, field)
    dtype = FIXED_WIDTH.get(item.datatype)
    if dtype is not None and len(values):
        payload = _packed(item.contents.SerializeToString(), item.contents.DESCRIPTOR.fields_by_name[field].number)
        if payload is not None and len(payload) == len(values) * dtype.itemsize:
            return np.frombuffer(payload, dtype=dtype)
    return list(values)


def _packed(wire: bytes, number: int) -> memoryview | None:
    """The payload of `wire` when it is exactly one length-delimited field `number` (a packed repeated field), else None."""
    position, tag = _varint(wire, 0)
    if tag != (number << 3 | 2):
        return None
    position, length = _varint(wire, position)
    return memoryview(wire)[position:] if position + length == len(wire) else None


def _varint(wire: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while position < len(wire) and shift < 64:
        byte = wire[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return position, value
        shift += 7
    return position, -1


def encode_outputs(response: Any, selected: list[Output], predictions: Any) -> None:
    rows = len(predictions)
    for output in selected:
        response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape(rows))
        response.raw_output_contents.append(tensors.encode_raw(output.datatype, output.binary(predictions)))


def guarded(service: InferenceService, rpc: str, message: Any) -> Callable[[bytes, grpc.ServicerContext], Any]:
    """The one wrapper of every RPC: authenticate (when auth is on), decode the request here rather than in grpcio (which
    answers INTERNAL to a malformed message), and answer any exception with the gRPC status matching the REST status of
    the same failure. A refused ModelInfer reaches the data plane's hooks like a refused REST inference."""
    method: Handler = getattr(service, _snake_case(rpc))

    def handler(raw: bytes, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        metadata = context.invocation_metadata()
        traced = service.tracing.start(rpc, metadata) if service.tracing is not None else None
        sent = next((value for key, value in metadata if key == "x-request-id"), None)
        request_id = service.request_ids(sent.encode("latin-1") if isinstance(sent, str) else sent)
        context.send_initial_metadata((("x-request-id", request_id),))  # echoed, as the REST protocols echo X-Request-ID
        principal = request = response = None
        try:
            principal = service.gate.admit(rpc, metadata, context.peer()) if service.gate is not None else None
            try:
                request = message.FromString(raw)
            except DecodeError:
                raise ProtocolError(400, f"the request is not a valid {message.DESCRIPTOR.name}") from None
            response = method(request, context, Call(principal, request_id))
        except Exception as exc:
            failure = protocol_error_of(exc)
            if rpc == "ModelInfer":
                service.dataplane.refused(Protocol.V2_GRPC, "", failure, started)
            code = failure.grpc_code
        else:
            code = grpc.StatusCode.OK
        if service.lines is not None:
            fields = access_fields(rpc, code, time.perf_counter() - started, request_id, context.peer(), principal, request, response)
            service.lines.write(fields if traced is None else fields | service.tracing.ids(traced))  # type: ignore[union-attr]
        if traced is not None:
            service.tracing.end(traced, code)  # type: ignore[union-attr]
        service.count_answer()
        if code is not grpc.StatusCode.OK:
            context.abort(code, failure.message)
        return response

    return handler


def access_fields(
    rpc: str, code: grpc.StatusCode, seconds: float, request_id: str, peer: str, principal: Principal | None, request: Any, response: Any
) -> dict[str, Any]:
    """The access line of one RPC, in the HTTP lines' shape: `status` is the gRPC code's name, `method` is "grpc"."""
    model = getattr(response, "model_name", None) or getattr(request, "model_name", None) or getattr(request, "name", None) or None
    return {
        "request_id": request_id,
        "method": "grpc",
        "path": f"/{SERVICE}/{rpc}",
        "status": code.name,
        "latency_ms": round(seconds * 1000, 3),
        "model": model[:MAX_ECHOED] if model else None,
        "version": getattr(response, "model_version", None) or None,
        "protocol": Protocol.V2_GRPC.value,
        "client": peer,
        "subject": principal.identity if principal is not None else None,
    }


def method_handlers(service: InferenceService) -> grpc.GenericRpcHandler:
    handlers = {}
    for name in RPCS:
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            guarded(service, name, MESSAGES[f"{name}Request"]),
            response_serializer=MESSAGES[f"{name}Response"].SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def _snake_case(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name).lstrip("_")


class GrpcServer:
    """The gRPC endpoint of one app: bound and started by `start`, stopped by `stop`."""

    def __init__(
        self, service: InferenceService, host: str, port: int, workers: int, limits: RequestLimits, tls: Tls | None = None
    ) -> None:
        self.service, self.host, self.requested_port, self.workers, self.limits, self.tls = service, host, port, workers, limits, tls
        self.port: int | None = None
        self._server: Any = None
        self._stopped: threading.Event | None = None

    def start(self) -> int:
        options = [("grpc.max_receive_message_length", self.limits.max_body_bytes), ("grpc.max_send_message_length", -1)]
        server = grpc.server(ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sealserve-grpc"), options=options)
        server.add_generic_rpc_handlers((method_handlers(self.service),))
        address = f"[{self.host}]:{self.requested_port}" if ":" in self.host else f"{self.host}:{self.requested_port}"
        if self.tls is not None:
            credentials = grpc.ssl_server_credentials([(self.tls.keyfile.read_bytes(), self.tls.certfile.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"gRPC cannot listen on {address}")
        server.start()
        self._server, self.port = server, port
        logger.info("Open Inference Protocol gRPC listening on %s:%s%s", self.host, port, " (TLS)" if self.tls is not None else "")
        return int(port)

    def stop_accepting(self, grace: float) -> None:
        """Refuse new calls; the calls in flight may finish within `grace` seconds (grpcio aborts them after)."""
        if self._server is not None:
            self._stopped = self._server.stop(grace)
            self._server = None

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting (if not done yet) and wait until the calls in flight are done."""
        self.stop_accepting(grace)
        if self._stopped is not None:
            self._stopped.wait(grace + 1)
