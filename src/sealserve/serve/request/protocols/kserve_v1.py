"""KServe V1 (TensorFlow-Serving style) REST: ``{"instances": [...]}`` → ``{"predictions": [...]}``.

An instance is a list of feature values in the bundle's feature order, or an object keyed by feature
name (validated exactly like the native API). A prediction is the class label when the bundle declares
labels (``">50K"``, not ``1``), else the class value or number (`ModelInterface.predictions`). Errors are
``{"error": "..."}``, as KServe answers them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ProtocolError
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.request import paths
from sealserve.serve.request.dataplane import DataPlane, InferenceRequest
from sealserve.serve.request.hot_routes import HotRoute
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.principal import principal_of
from sealserve.serve.request.protocols.errors import kserve_error
from sealserve.serve.request.protocols.rest import guarded_route, hot_protocol_route, parse_json, read_body
from sealserve.serve.request.request_ids import request_id_of
from sealserve.serve.request.responses import JsonAnswer, JsonBodies, json_response, model_headers


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    instances: list[Any] | None = None
    inputs: list[Any] | None = None


def build_router(registry: ModelRegistry, dataplane: DataPlane, limits: RequestLimits, hot: list[HotRoute]) -> APIRouter:
    router = APIRouter(prefix=paths.KSERVE_V1_MODELS, tags=["KServe V1"], route_class=guarded_route(kserve_error))

    @router.get("", summary="Names of the configured models")
    async def list_models() -> Response:
        return json_response({"models": [state.name for state in registry.states]})

    @router.get("/{name}", summary="Model readiness (503 until verified and loaded)")
    async def model_status(name: str) -> Response:
        served = registry.serving(name)
        if served is None:
            return json_response({"name": name, "ready": False}, status=503)
        return json_response({"name": served.name, "ready": True, "version": served.version}, headers=model_headers(served))

    @router.post("/{name}:predict", summary="Predict a batch of instances")
    async def predict(name: str, request: Request) -> Response:
        body = await read_body(request, limits)
        envelope = parse_json(PredictRequest, body, "predict request")
        instances = envelope.instances if envelope.instances is not None else envelope.inputs
        if instances is None:
            raise ProtocolError(400, 'missing input: the body needs "instances" (a list of feature lists or objects)')
        asked = InferenceRequest(
            name,
            Protocol.KSERVE_V1,
            lambda interface: interface.records(instances, objects=True, item="instance"),
            rows=len(instances),
            item="instance",
            request_id=request_id_of(request),
            principal=principal_of(request),
            headers=request.headers,
        )
        result = await dataplane.infer(asked)
        served = result.served
        response = JsonAnswer(
            {"predictions": result.interface.predictions(result.outputs), "model_name": served.name, "model_version": served.version},
            served,
        )
        if dataplane.answering:
            dataplane.answered(asked, result, JsonBodies(body, bytes(response.body)))
        return response

    async def hot_predict(request: Request) -> Response:
        return await predict(request.path_params["name"], request)

    hot.append(hot_protocol_route(f"{paths.KSERVE_V1_MODELS}/{{name}}:predict", hot_predict, kserve_error, dataplane, Protocol.KSERVE_V1))
    return router
