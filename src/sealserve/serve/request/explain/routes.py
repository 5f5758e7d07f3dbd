"""The explanation routes: KServe V1 `POST /v1/models/{name}:explain` (its own verb), native `POST
/api/models/{name}/explanation` (one record) and `/explanations` (a batch, the shapes `/predictions` takes, JSON only).

Each decodes exactly as its prediction route does and answers in its protocol's shape, errors included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sealserve.serve.config import RequestLimits
from sealserve.serve.errors import ProtocolError, ServingError, protocol_error_of
from sealserve.serve.request import paths
from sealserve.serve.request.columnar.json_shapes import parse_batch
from sealserve.serve.request.dataplane import Batch, InferenceRequest
from sealserve.serve.request.explain.plane import Explanations, choice_of
from sealserve.serve.request.hot_routes import HotRoute, hot_route
from sealserve.serve.request.http_body import read_json_body
from sealserve.serve.request.interface import ModelInterface
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.principal import principal_of
from sealserve.serve.request.protocols.errors import kserve_error, render_error
from sealserve.serve.request.protocols.kserve_v1 import PredictRequest
from sealserve.serve.request.protocols.native import parse_input
from sealserve.serve.request.protocols.rest import parse_json
from sealserve.serve.request.request_ids import request_id_of
from sealserve.serve.request.responses import json_response, model_headers


def explanation_routes(explanations: Explanations, limits: RequestLimits, hidden: frozenset[str]) -> list[HotRoute]:
    """The three routes, for `HotRoutes` (and the auth gate, which reads their `explains` flag)."""
    dataplane = explanations.dataplane

    async def explained(request: Request, protocol: Protocol, decode: Callable[[ModelInterface], Batch], **options: Any) -> Any:
        name = request.path_params["name"]
        if name in hidden:
            raise ServingError(404, "not_found", f"model {name!r} has no endpoints: the service configuration sets create_endpoint: false")
        choice = choice_of(request)
        asked = InferenceRequest(
            name, protocol, decode, request_id=request_id_of(request), principal=principal_of(request), purpose="explain", **options
        )
        return await explanations.explain(asked, choice)

    async def native_one(request: Request) -> Response:
        body = await read_json_body(request, limits, json_only=True)
        result = await explained(request, Protocol.NATIVE, lambda interface: [parse_input(body, interface.schema)], rows=1, validated=True)
        return _answer(result, "explanation", result.outputs[0])

    async def native_many(request: Request) -> Response:
        body = await read_json_body(request, limits, json_only=True)
        result = await explained(request, Protocol.NATIVE, lambda interface: parse_batch(body, interface, dataplane), validated=True)
        return _answer(result, "explanations", result.outputs)

    async def kserve_explain(request: Request) -> Response:
        body = await read_json_body(request, limits, json_only=True)
        envelope = parse_json(PredictRequest, body, "explain request")
        instances = envelope.instances if envelope.instances is not None else envelope.inputs
        if instances is None:
            raise ProtocolError(400, 'missing input: the body needs "instances" (a list of feature lists or objects)')
        decode = lambda interface: interface.records(instances, objects=True, item="instance")  # noqa: E731
        result = await explained(request, Protocol.KSERVE_V1, decode, rows=len(instances), item="instance")
        return _answer(result, "explanations", result.outputs)

    kserve_render = lambda exc: kserve_error(protocol_error_of(exc))  # noqa: E731
    return [
        hot_route(
            f"{paths.NATIVE_MODELS}/{{name}}{paths.NATIVE_EXPLANATION}", native_one, render_error, dataplane, Protocol.NATIVE, explains=True
        ),
        hot_route(
            f"{paths.NATIVE_MODELS}/{{name}}{paths.NATIVE_EXPLANATIONS}",
            native_many,
            render_error,
            dataplane,
            Protocol.NATIVE,
            explains=True,
        ),
        hot_route(
            f"{paths.KSERVE_V1_MODELS}/{{name}}{paths.KSERVE_V1_EXPLAIN}",
            kserve_explain,
            kserve_render,
            dataplane,
            Protocol.KSERVE_V1,
            explains=True,
        ),
    ]


def _answer(result: Any, key: str, outputs: Any) -> Response:
    served = result.served
    return json_response({"model_name": served.name, "model_version": served.version, key: outputs}, headers=model_headers(served))
