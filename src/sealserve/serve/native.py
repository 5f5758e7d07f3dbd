"""sealserve's own REST API: model listing and typed single/batch predictions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from sealserve.serve.body import read_json_body
from sealserve.serve.config import ClassSource, Limits
from sealserve.serve.errors import RequestError, validation_details
from sealserve.serve.registry import ModelRegistry, ModelState, ServedModel
from sealserve.serve.responses import describe_state, json_response, model_headers


def parse_input(body: bytes, validator: Any) -> Any:
    """Validate straight from bytes; malformed JSON is 400, schema violations are 422 with field paths."""
    try:
        return validator(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise RequestError(400, "malformed_json", "request body is not valid JSON") from None
        raise RequestError(
            422, "validation_error", "request body does not match the model's input schema", validation_details(exc)
        ) from None


def without_endpoints(states: Iterable[ModelState]) -> frozenset[str]:
    """Names of the class models configured with `create_endpoint: false`: loaded, but given no prediction endpoints."""
    hidden: set[str] = set()
    for state in states:
        source = state.source
        if isinstance(source, ClassSource) and not source.create_endpoint and source.qualified_name is not None:
            hidden.add(source.qualified_name)
    return frozenset(hidden)


def build_router(registry: ModelRegistry, limits: Limits) -> APIRouter:
    router = APIRouter(prefix="/api/models", tags=["models"])
    batch_validators: WeakKeyDictionary[type, TypeAdapter[Any]] = WeakKeyDictionary()  # per schema; dropped with a swapped-out model
    hidden = without_endpoints(registry.states)

    def predicting(name: str) -> ServedModel:
        if name in hidden:
            raise RequestError(
                404, "not_found", f"model {name!r} has no prediction endpoint: the service configuration sets create_endpoint: false for it"
            )
        return registry.get(name)

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
        return json_response(detail)

    @router.post("/{name}/prediction", include_in_schema=False)
    async def predict_one(name: str, request: Request) -> Response:
        served = predicting(name)
        body = await read_json_body(request, limits.max_body_bytes)
        record = parse_input(body, served.model.input_schema.model_validate_json)
        output = served.model.predict(record)
        return json_response(
            {"model_name": served.name, "model_version": served.version, "output": output.model_dump(mode="json")},
            headers=model_headers(served),
        )

    @router.post("/{name}/predictions", include_in_schema=False)
    async def predict_many(name: str, request: Request) -> Response:
        served = predicting(name)
        body = await read_json_body(request, limits.max_body_bytes)
        schema = served.model.input_schema
        adapter = batch_validators.get(schema)
        if adapter is None:
            adapter = batch_validators[schema] = TypeAdapter(list[schema])  # type: ignore[valid-type]
        records = parse_input(body, adapter.validate_json)
        if not records:
            raise RequestError(422, "validation_error", "a batch needs at least one record")
        if len(records) > limits.max_batch_size:
            raise RequestError(413, "batch_too_large", f"batch of {len(records)} records exceeds max_batch_size {limits.max_batch_size}")
        outputs = served.model.predict_batch(records)
        return json_response(
            {"model_name": served.name, "model_version": served.version, "outputs": [o.model_dump(mode="json") for o in outputs]},
            headers=model_headers(served),
        )

    return router
