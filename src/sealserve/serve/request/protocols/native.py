"""sealserve's own REST API: model listing and typed single/batch predictions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from sealserve.serve.config import ClassSource, RequestLimits
from sealserve.serve.errors import ServingError, validation_details
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState
from sealserve.serve.lifecycle.served import ServedModel
from sealserve.serve.request import paths
from sealserve.serve.request.dataplane import Batch, DataPlane, Inference, InferenceRequest, JsonBodies
from sealserve.serve.request.hot_routes import HotRoute, hot_route
from sealserve.serve.request.http_body import read_json_body
from sealserve.serve.request.interface import ModelInterface
from sealserve.serve.request.paths import Protocol
from sealserve.serve.request.principal import principal_of
from sealserve.serve.request.protocols.errors import render_error
from sealserve.serve.request.request_ids import request_id_of
from sealserve.serve.request.responses import describe_state, json_response, model_headers


def parse_input(body: bytes, schema: type[BaseModel]) -> Any:
    """Validate straight from bytes; malformed JSON is 400, schema violations are 422 with field paths."""
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise ServingError(400, "malformed_json", "request body is not valid JSON") from None
        raise _invalid(exc) from None


def parse_batch(body: bytes, interface: ModelInterface, dataplane: DataPlane) -> Batch:
    """Count the records before validating any: an oversized batch is refused before work proportional to it.
    A batch the columnar check accepts skips per-record validation; any other gets the schema's per-field 422."""
    try:
        items = pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError:
        raise ServingError(400, "malformed_json", "request body is not valid JSON") from None
    if not isinstance(items, list):
        raise ServingError(422, "validation_error", "a batch is a JSON array of records")
    if not items:
        raise ServingError(422, "validation_error", "a batch needs at least one record")
    dataplane.check_rows(len(items))
    columns = interface.columns_of_records(items)
    if columns is not None:
        return columns
    try:
        return interface.schema_list.validate_python(items)
    except ValidationError as exc:
        raise _invalid(exc) from None


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
        return json_response(detail)

    async def infer(request: Request, decode: Callable[[bytes, ModelInterface], Batch], rows: int | None = None) -> Answered:
        name = request.path_params["name"]
        check_endpoint(name)
        body = await read_json_body(request, limits)
        asked = InferenceRequest(
            name,
            Protocol.NATIVE,
            lambda interface: decode(body, interface),
            rows=rows,
            validated=True,
            request_id=request_id_of(request),
            principal=principal_of(request),
        )
        return Answered(asked, await dataplane.infer(asked), body)

    def answer(answered: Answered, key: str, outputs: Any) -> Response:
        served = answered.result.served
        response = json_response({"model_name": served.name, "model_version": served.version, key: outputs}, headers=model_headers(served))
        if dataplane.answering:
            dataplane.answered(answered.request, answered.result, JsonBodies(answered.body, bytes(response.body)))
        return response

    async def predict_one(request: Request) -> Response:
        answered = await infer(request, lambda body, interface: [parse_input(body, interface.schema)], rows=1)
        result = answered.result
        return answer(answered, "output", result.interface.json_outputs(result.outputs)[0])

    async def predict_many(request: Request) -> Response:
        answered = await infer(request, lambda body, interface: parse_batch(body, interface, dataplane))
        result = answered.result
        return answer(answered, "outputs", result.interface.json_outputs(result.outputs))

    for route in (
        hot_route(f"{paths.NATIVE_MODELS}/{{name}}/prediction", predict_one, render_error, dataplane, Protocol.NATIVE),
        hot_route(f"{paths.NATIVE_MODELS}/{{name}}/predictions", predict_many, render_error, dataplane, Protocol.NATIVE),
    ):
        hot.append(route)
        router.routes.append(route)  # also here, so another method on the path is a 405, not a 404
    return router
