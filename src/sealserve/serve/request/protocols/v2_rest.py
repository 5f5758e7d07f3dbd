"""Open Inference Protocol (KServe V2) over REST: its paths and JSON shapes, translated to core calls.

Errors are ``{"error": "..."}`` (400 bad request, shape, datatype or validation; 404 unknown model or
version; 413 too large; 503 not ready). Triton's binary tensor extension is accepted on input (the
``Inference-Header-Content-Length`` header and per-input ``binary_data_size``); responses are JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictInt
from starlette.responses import Response

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ProtocolError
from sealserve.serve.lifecycle.actions import AdminActions
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState
from sealserve.serve.request import paths
from sealserve.serve.request.dataplane import DataPlane, InferenceRequest
from sealserve.serve.request.hot_routes import HotRoute
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.principal import principal_of, require_admin
from sealserve.serve.request.protocols import v2_tensors as tensors
from sealserve.serve.request.protocols.errors import kserve_error
from sealserve.serve.request.protocols.rest import guarded_route, hot_protocol_route, parse_json, read_body
from sealserve.serve.request.request_ids import request_id_of
from sealserve.serve.request.responses import JsonAnswer, JsonBodies, json_response, model_headers

BINARY_HEADER = "inference-header-content-length"


class InputTensor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    shape: list[StrictInt]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None = None


def build_router(
    registry: ModelRegistry,
    dataplane: DataPlane,
    limits: RequestLimits,
    server: tensors.ServerInfo,
    repository: AdminActions | None,
    hot: list[HotRoute],
) -> APIRouter:
    router = APIRouter(prefix=paths.V2, tags=["Open Inference Protocol (V2)"], route_class=guarded_route(kserve_error))

    @router.get("", summary="Server metadata")
    async def server_metadata() -> Response:
        return json_response(server.as_dict())

    @router.get("/health/live", summary="Liveness")
    async def live() -> Response:
        return json_response({"live": True})

    @router.get("/health/ready", summary="Readiness: every configured model is verified and loaded")
    async def ready() -> Response:
        is_ready = registry.ready
        return json_response({"ready": is_ready}, status=200 if is_ready else 503)

    async def metadata(name: str, version: str | None) -> Response:
        served = dataplane.resolve(name, version)
        return json_response(tensors.model_metadata(served, dataplane.interface(served)), headers=model_headers(served))

    async def model_ready(name: str, version: str | None) -> Response:
        if registry.serving(name) is None:
            return json_response({"name": name, "ready": False}, status=503)
        served = dataplane.resolve(name, version)  # a version not served is a 404, as for metadata and inference
        return json_response({"name": served.name, "ready": True, "version": served.version}, headers=model_headers(served))

    async def infer(name: str, version: str | None, request: Request) -> Response:
        header, envelope, binary = await _read_request(request, limits)
        asked = InferenceRequest(
            name,
            Protocol.V2_REST,
            lambda interface: tensors.batch(interface, _decode_inputs(envelope.inputs, binary), limits),
            version=version,
            request_id=request_id_of(request),
            principal=principal_of(request),
            headers=request.headers,
        )
        result = await dataplane.infer(asked)
        served, predictions = result.served, result.outputs
        selected = result.interface.select([output.name for output in envelope.outputs] if envelope.outputs else None)
        body: dict[str, Any] = {"model_name": served.name, "model_version": served.version}
        if envelope.id is not None:
            body["id"] = envelope.id
        rows = len(predictions)
        body["outputs"] = [
            {"name": output.name, "datatype": output.datatype, "shape": output.shape(rows), "data": output.extract(predictions)}
            for output in selected
        ]
        response = JsonAnswer(body, served)
        if dataplane.answering:
            answer = bytes(response.body)
            dataplane.answered(asked, result, BinaryInputs(header, binary, answer) if binary else JsonBodies(header, answer))
        return response

    @router.get("/models/{name}", summary="Model metadata: versions, platform, input and output tensors")
    async def model_metadata(name: str) -> Response:
        return await metadata(name, None)

    @router.get("/models/{name}/versions/{version}", summary="Model metadata of one version")
    async def version_metadata(name: str, version: str) -> Response:
        return await metadata(name, version)

    @router.get("/models/{name}/ready", summary="Model readiness")
    async def ready_model(name: str) -> Response:
        return await model_ready(name, None)

    @router.get("/models/{name}/versions/{version}/ready", summary="Model readiness of one version")
    async def ready_version(name: str, version: str) -> Response:
        return await model_ready(name, version)

    @router.post("/models/{name}/infer", summary="Inference")
    async def infer_model(name: str, request: Request) -> Response:
        return await infer(name, None, request)

    @router.post("/models/{name}/versions/{version}/infer", summary="Inference on one version")
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await infer(name, version, request)

    async def hot_infer(request: Request) -> Response:
        return await infer(request.path_params["name"], request.path_params.get("version"), request)

    hot.append(hot_protocol_route(f"{paths.V2}/models/{{name}}/infer", hot_infer, kserve_error, dataplane, Protocol.V2_REST))
    hot.append(
        hot_protocol_route(f"{paths.V2}/models/{{name}}/versions/{{version}}/infer", hot_infer, kserve_error, dataplane, Protocol.V2_REST)
    )
    if repository is not None:
        add_repository_routes(router, repository, limits)
    return router


def add_repository_routes(router: APIRouter, actions: AdminActions, limits: RequestLimits) -> None:
    """The model repository extension (index, load, unload): only when `protocols.v2_repository` is on and,
    like the admin endpoints, for the admin scope with auth on, else for loopback clients only.
    With several worker processes, load and unload apply to every worker and succeed only when all did."""
    registry = actions.registry

    class IndexRequest(BaseModel):
        model_config = ConfigDict(extra="ignore")

        ready: bool = False

    @router.post("/repository/index", summary="Repository index: every configured model and its state")
    async def index(request: Request) -> Response:
        require_admin(request, "the repository extension")
        body = await read_body(request, limits)
        only_ready = parse_json(IndexRequest, body, "index request").ready if body.strip() else False
        entries = [_index_entry(state) for state in registry.states if state.ready or not only_ready]
        return json_response(entries)

    @router.post("/repository/models/{name}/load", summary="Load (verify again and reload) a configured model")
    async def load(name: str, request: Request) -> Response:
        require_admin(request, "the repository extension")
        applied = await actions.apply("reload", name)
        state = applied.state
        problems = applied.outcome.problems(clean=True) if applied.outcome is not None else []
        if applied.outcome is not None and problems:
            raise ProtocolError(applied.outcome.status(400), f"failed to load model {name!r} on every worker: {'; '.join(problems)}")
        if state.error is not None:
            kept = f"; still serving version {state.served.version}" if state.served is not None else ""
            raise ProtocolError(400, f"failed to load model {name!r}: {state.error}{kept}")
        assert state.served is not None
        return json_response({"name": state.served.name, "version": state.served.version}, headers=model_headers(state.served))

    @router.post("/repository/models/{name}/unload", summary="Stop serving a model until it is loaded again")
    async def unload(name: str, request: Request) -> Response:
        require_admin(request, "the repository extension")
        applied = await actions.apply("unload", name)
        problems = applied.outcome.problems() if applied.outcome is not None else []
        if applied.outcome is not None and problems:
            raise ProtocolError(applied.outcome.status(409), f"failed to unload model {name!r} on every worker: {'; '.join(problems)}")
        return json_response({"name": applied.state.name, "state": "UNAVAILABLE"})


def _index_entry(state: ModelState) -> dict[str, Any]:
    served = state.served
    entry: dict[str, Any] = {"name": state.name}
    if served is not None:
        entry["version"] = served.version
    entry["state"] = "READY" if served is not None else ("UNAVAILABLE" if state.attempted else "LOADING")
    if state.error:
        entry["reason"] = state.error
    return entry


async def _read_request(request: Request, limits: RequestLimits) -> tuple[bytes, InferRequest, bytes]:
    """The JSON header as sent, its envelope and, with the binary tensor extension, the binary section after it."""
    header = request.headers.get(BINARY_HEADER)
    body = await read_body(request, limits, binary=header is not None)
    if header is None:
        return body, parse_json(InferRequest, body, "inference request"), b""
    if not (header.isascii() and header.isdigit()) or int(header) > len(body):
        raise ProtocolError(400, "Inference-Header-Content-Length must be the JSON header's length in bytes, at most the body's length")
    split = int(header)
    return body[:split], parse_json(InferRequest, body[:split], "inference request"), body[split:]


@dataclass(frozen=True)
class BinaryInputs:
    """A request that used the binary tensor extension, as JSON: its header with each binary input's values as `data`."""

    header: bytes
    binary: bytes
    response: bytes

    def request_json(self) -> bytes:
        body = json.loads(self.header)  # the standard parser: it reads the NaN tokens the envelope parser accepted
        decoded = _decode_inputs(InferRequest.model_validate(body).inputs, self.binary)
        for item, tensor in zip(body["inputs"], decoded, strict=True):
            parameters = item.get("parameters") or {}
            if parameters.pop("binary_data_size", None) is not None:
                item["data"] = tensors.as_list(tensor.values)
                if not parameters:
                    item.pop("parameters", None)
        return orjson.dumps(body)

    def response_json(self) -> bytes:
        return self.response


def _decode_inputs(inputs: list[InputTensor], binary: bytes) -> list[tensors.Tensor]:
    decoded = []
    offset = 0
    for item in inputs:
        size = (item.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise ProtocolError(400, f"input {item.name!r}: binary_data_size {size!r} does not fit the request's binary data")
            decoded.append(tensors.decode_raw(item.name, item.datatype, item.shape, binary[offset : offset + size]))
            offset += size
        elif item.data is None:
            raise ProtocolError(400, f"input {item.name!r} has no data")
        else:
            tensors.check_datatype(item.name, item.datatype)
            decoded.append(tensors.tensor(item.name, item.datatype, item.shape, tensors.flatten(item.name, item.data)))
    return decoded
