"""Seldon protocol (seldon-core v1 microservice API): SeldonMessage in, SeldonMessage out.

``{"data": {"names": [...], "ndarray": [[...], ...]}}`` or ``{"data": {"names": [...], "tensor": {"shape": [N, F],
"values": [...]}}}``; `names` (optional) orders the columns, otherwise the bundle's feature order applies.
A model with probabilities answers them with the class labels as `names` (like Seldon's sklearn server),
a multi-output model its targets, an outlier detector `is_outlier` and `score`, any other model its predictions.
``meta`` carries the model name and version. Errors are Seldon's
``{"status": {"code", "info", "reason", "status": "FAILURE"}}``.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictInt
from starlette.responses import PlainTextResponse, Response

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ProtocolError
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request.dataplane import DataPlane, InferenceRequest, check_rows
from sealserve.serve.request.hot_routes import HotRoute
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.principal import principal_of
from sealserve.serve.request.protocols.errors import seldon_error
from sealserve.serve.request.protocols.rest import guarded_route, hot_protocol_route, parse_json, read_body
from sealserve.serve.request.request_ids import request_id_of
from sealserve.serve.request.responses import JsonAnswer, JsonBodies, json_response


class SeldonTensor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shape: list[StrictInt]
    values: list[Any]


class DefaultData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str] | None = None
    ndarray: list[Any] | None = None
    tensor: SeldonTensor | None = None


class Meta(BaseModel):
    model_config = ConfigDict(extra="allow")

    puid: str | None = None
    tags: dict[str, Any] | None = None


class SeldonMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DefaultData | None = None
    meta: Meta | None = None


def build_router(registry: ModelRegistry, dataplane: DataPlane, limits: RequestLimits, hot: list[HotRoute]) -> APIRouter:
    router = APIRouter(tags=["Seldon"], route_class=guarded_route(seldon_error))

    async def predict(name: str, request: Request) -> Response:
        body = await read_body(request, limits)
        message = parse_json(SeldonMessage, body, "SeldonMessage")
        data = message.data
        if data is None or (data.ndarray is None) == (data.tensor is None):
            raise ProtocolError(400, "missing input: data needs exactly one of ndarray or tensor")
        names = data.names or None
        rows = _tensor_rows(data.tensor, limits) if data.tensor is not None else _ndarray_rows(data.ndarray or [])
        numeric_strings = data.ndarray is not None
        asked = InferenceRequest(
            name,
            Protocol.SELDON,
            lambda interface: interface.records(rows, names, numeric_strings=numeric_strings),
            rows=len(rows),
            request_id=request_id_of(request),
            principal=principal_of(request),
            headers=request.headers,
        )
        inference = await dataplane.infer(asked)
        served, interface, predictions = inference.served, inference.interface, inference.outputs
        names_out, values, width = interface.seldon(predictions)
        shape = [len(predictions)] if width is None else [len(predictions), width]
        result = _tensor_or_ndarray(data.tensor is not None, values, shape)
        meta = _meta(served, message.meta)
        response = JsonAnswer({"data": {"names": names_out, **result}, "meta": meta}, served)
        if dataplane.answering:
            dataplane.answered(asked, inference, JsonBodies(body, bytes(response.body)))
        return response

    @router.post("/api/v1.0/predictions", summary="Seldon prediction (servers with one model)")
    async def predictions(request: Request) -> Response:
        return await predict(_only_model(registry), request)

    @router.post("/seldon/{namespace}/{name}/api/v1.0/predictions", summary="Seldon prediction, ingress path (namespace ignored)")
    async def deployment_predictions(namespace: str, name: str, request: Request) -> Response:
        return await predict(name, request)

    @router.get("/health/ping", summary="Seldon liveness")
    async def ping() -> Response:
        return PlainTextResponse("pong")

    @router.get("/health/status", summary="Seldon readiness: every configured model is verified and loaded")
    async def status() -> Response:
        path = {served.name: served.version for served in registry.served}
        if registry.ready:
            return json_response({"status": {"code": 200, "status": "SUCCESS", "info": "ready"}, "meta": {"requestPath": path}})
        return json_response({"status": {"code": 503, "status": "FAILURE", "info": "not ready"}, "meta": {"requestPath": path}}, status=503)

    async def hot_predictions(request: Request) -> Response:
        return await predictions(request)

    async def hot_deployment_predictions(request: Request) -> Response:
        return await predict(request.path_params["name"], request)

    hot.append(hot_protocol_route("/api/v1.0/predictions", hot_predictions, seldon_error, dataplane, Protocol.SELDON))
    hot.append(
        hot_protocol_route(
            "/seldon/{namespace}/{name}/api/v1.0/predictions", hot_deployment_predictions, seldon_error, dataplane, Protocol.SELDON
        )
    )
    return router


def _only_model(registry: ModelRegistry) -> str:
    states = registry.states
    if len(states) != 1:
        raise ProtocolError(404, "this server serves several models; post to /seldon/{namespace}/{model}/api/v1.0/predictions")
    state = states[0]
    return state.name


def _ndarray_rows(ndarray: list[Any]) -> list[Any]:
    """A 2-D ndarray is rows; a 1-D ndarray (Seldon's `["55"]`) is one row."""
    if all(isinstance(item, list) for item in ndarray):
        return ndarray
    if any(isinstance(item, list) for item in ndarray):
        raise ProtocolError(400, "ndarray mixes rows and values")
    return [ndarray]


def _tensor_rows(tensor: SeldonTensor, limits: RequestLimits) -> list[Any]:
    shape, values = tensor.shape, tensor.values
    if len(shape) == 1:
        shape = [1, shape[0]]
    if len(shape) != 2 or any(dimension < 0 for dimension in shape):
        raise ProtocolError(400, f"tensor shape {tensor.shape} must be [N, features] or [features]")
    check_rows(shape[0], limits)  # before anything proportional to the declared shape is built
    if len(values) != math.prod(shape):
        raise ProtocolError(400, f"tensor shape {tensor.shape} holds {math.prod(shape)} values, but {len(values)} were sent")
    width = shape[1]
    return [values[start : start + width] for start in range(0, len(values), width)] if width else [[] for _ in range(shape[0])]


def _tensor_or_ndarray(as_tensor: bool, values: list[Any], shape: list[int]) -> dict[str, Any]:
    """Answer in the request's form; a tensor holds numbers only, so other values fall back to ndarray."""
    numeric = all(isinstance(value, int | float) and not isinstance(value, bool) for value in values)
    if as_tensor and numeric:
        return {"tensor": {"shape": shape, "values": values}}
    if len(shape) == 2:
        width = shape[1]
        return {"ndarray": [values[start : start + width] for start in range(0, len(values), width)]}
    return {"ndarray": values}


def _meta(served: ServedModel, request_meta: Meta | None) -> dict[str, Any]:
    tags = dict(request_meta.tags or {}) if request_meta is not None else {}
    tags |= {"model_name": served.name, "model_version": served.version}
    meta: dict[str, Any] = {"tags": tags, "requestPath": {served.name: served.version}}
    if request_meta is not None and request_meta.puid:
        meta["puid"] = request_meta.puid
    return meta
