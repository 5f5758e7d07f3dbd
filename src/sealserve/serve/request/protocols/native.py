"""sealserve's own REST API: model listing and typed single/batch predictions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from sealserve.serve.config import ClassSource, RequestLimits
from sealserve.serve.errors import ServingError, validation_details
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request import paths
from sealserve.serve.request.collection import collection_paused
from sealserve.serve.request.columnar.arrow_read import ARROW_STREAM, parse_arrow
from sealserve.serve.request.columnar.arrow_write import ColumnsExchange, accepts_arrow, answer_table, ipc_stream
from sealserve.serve.request.columnar.json_shapes import parse_batch
from sealserve.serve.request.dataplane import Batch, DataPlane, Inference, InferenceRequest
from sealserve.serve.request.explain.plane import explanation_detail
from sealserve.serve.request.hot_routes import HotRoute, hot_route
from sealserve.serve.request.http_body import read_json_body
from sealserve.serve.request.interface import ModelInterface
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.principal import principal_of
from sealserve.serve.request.protocols.errors import render_error
from sealserve.serve.request.request_ids import request_id_of
from sealserve.serve.request.responses import Exchange, JsonAnswer, JsonBodies, describe_state, json_response, model_headers


def parse_input(body: bytes, schema: type[BaseModel]) -> Any:
    """Validate straight from bytes; malformed JSON is 400, schema violations are 422 with field paths."""
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise ServingError(400, "malformed_json", "request body is not valid JSON") from None
        raise _invalid(exc) from None


def answer_json(result: Inference, key: str, outputs: Any) -> dict[str, Any]:
    return {"model_name": result.served.name, "model_version": result.served.version, key: outputs}


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def columns_exchange(answered: Answered, arrow_request: bool) -> Exchange:
    """What the recording hooks see of an exchange with an Arrow side: JSON, rendered only if they ask."""
    result = answered.result

    def response() -> bytes:
        return orjson.dumps(answer_json(result, "outputs", result.interface.json_outputs(result.outputs)))

    return ColumnsExchange(answered.body, arrow_request, response)


def _invalid(exc: ValidationError) -> ServingError:
    return ServingError(422, "validation_error", "request body does not match the model's input schema", validation_details(exc))


def without_endpoints(states: Iterable[ModelState]) -> frozenset[str]:
    """Names of the class models configured with `create_endpoint: false`: loaded, but given no prediction endpoints."""
    hidden: set[str] = set()
    for state in states:
        source = state.source
        if isinstance(source, ClassSource) and not source.create_endpoint and source.qualified_name is not None:
            hidden.add(source.qualified_name)
    return frozenset(hidden)


@dataclass(frozen=True)
class Answered:
    """An inference and the body it was asked with, until its answer is encoded."""

    request: InferenceRequest
    result: Inference
    body: bytes


DriftStatus = Callable[[ServedModel], str | None]  # the model detail's drift status (observability's)


def build_router(
    registry: ModelRegistry, limits: RequestLimits, dataplane: DataPlane, hot: list[HotRoute], drift_status: DriftStatus
) -> APIRouter:
    """Listing and metadata routes; the two prediction routes go to `hot` (documented per model in openapi.py)."""
    router = APIRouter(prefix=paths.NATIVE_MODELS, tags=["models"])
    hidden = without_endpoints(registry.states)

    def check_endpoint(name: str) -> None:
        if name in hidden:
            raise ServingError(
                404, "not_found", f"model {name!r} has no prediction endpoint: the service configuration sets create_endpoint: false for it"
            )

    @router.get("", summary="List configured models")
    async def list_models() -> Response:
        return json_response({"models": [describe_state(state) for state in registry.states]})

    @router.get("/{name}", summary="One model: metadata, schemas, signer and bundle digest")
    async def get_model(name: str) -> Response:
        state = registry.state(name)
        detail = describe_state(state)
        if state.served is not None:
            model = state.served.model
            detail["input_schema"] = model.input_schema.model_json_schema()
            detail["output_schema"] = model.output_schema.model_json_schema()
            if state.served.metadata is not None:
                detail["metadata"] = state.served.metadata.model_dump(mode="json", exclude={"input_schema", "output_schema"})
            detail["drift"] = drift_status(state.served)
            detail["explanation"] = explanation_detail(state.served)
        return json_response(detail)

    async def infer(
        request: Request, decode: Callable[[bytes, ModelInterface], Batch], rows: int | None = None, *, binary: bool = False
    ) -> Answered:
        name = request.path_params["name"]
        check_endpoint(name)
        body = await read_json_body(request, limits, json_only=not binary)
        asked = InferenceRequest(
            name,
            Protocol.NATIVE,
            lambda interface: decode(body, interface),
            rows=rows,
            validated=True,
            request_id=request_id_of(request),
            principal=principal_of(request),
            headers=request.headers,
        )
        return Answered(asked, await dataplane.infer(asked), body)

    def answer(answered: Answered, key: str, outputs: Any) -> Response:
        response = JsonAnswer(answer_json(answered.result, key, outputs), answered.result.served)
        if dataplane.answering:
            dataplane.answered(answered.request, answered.result, JsonBodies(answered.body, bytes(response.body)))
        return response

    async def predict_one(request: Request) -> Response:
        answered = await infer(request, lambda body, interface: [parse_input(body, interface.schema)], rows=1)
        result = answered.result
        return answer(answered, "output", result.interface.json_outputs(result.outputs)[0])

    async def predict_many(request: Request) -> Response:
        arrow_in = media_type(request) == ARROW_STREAM
        parse = parse_arrow if arrow_in else parse_batch

        def decode(body: bytes, interface: ModelInterface) -> Batch:
            with collection_paused(len(body) // 64):  # a record takes more than 64 bytes of JSON or Arrow
                return parse(body, interface, dataplane)

        answered = await infer(request, decode, binary=arrow_in)
        result = answered.result
        if not accepts_arrow(request.headers.get("accept", ""), ARROW_STREAM):
            with collection_paused(len(result.inputs)):
                if not arrow_in:
                    return answer(answered, "outputs", result.interface.json_outputs(result.outputs))
                outputs = answer_json(result, "outputs", result.interface.json_outputs(result.outputs))
                response: Response = JsonAnswer(outputs, result.served)
        else:
            table = answer_table(result.interface, result.outputs, result.served.name, result.served.version)
            response = Response(ipc_stream(table), media_type=ARROW_STREAM, headers=model_headers(result.served))
        if dataplane.answering:
            dataplane.answered(answered.request, result, columns_exchange(answered, arrow_in))
        return response

    for route in (
        hot_route(f"{paths.NATIVE_MODELS}/{{name}}/prediction", predict_one, render_error, dataplane, Protocol.NATIVE),
        hot_route(f"{paths.NATIVE_MODELS}/{{name}}/predictions", predict_many, render_error, dataplane, Protocol.NATIVE),
    ):
        hot.append(route)
        router.routes.append(route)  # also here, so another method on the path is a 405, not a 404
    return router
