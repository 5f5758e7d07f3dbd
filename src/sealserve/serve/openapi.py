"""The OpenAPI contract: FastAPI's static routes plus one typed path pair per served model (unless its endpoints are off)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from sealserve.bundle.metadata import BundleMetadata
from sealserve.bundle.schema import input_model, output_model
from sealserve.model import MLModel
from sealserve.serve.native import without_endpoints

REF = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


@dataclass(frozen=True)
class ModelDescription:
    """What the contract needs to know about a model, obtainable without deserializing it."""

    name: str
    display_name: str
    description: str
    input_schema: type[BaseModel]
    output_schema: type[BaseModel]

    @classmethod
    def of_model(cls, name: str, model: MLModel) -> ModelDescription:
        return cls(name, model.display_name, model.description, model.input_schema, model.output_schema)

    @classmethod
    def of_metadata(cls, metadata: BundleMetadata) -> ModelDescription:
        return cls(
            metadata.name,
            metadata.name.replace("_", " ").title(),
            metadata.description,
            input_model(metadata.name, metadata.features),
            output_model(metadata.name, metadata.output),
        )


def build_openapi(app: FastAPI, models: list[ModelDescription]) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    registry = getattr(app.state, "registry", None)
    hidden = without_endpoints(registry.states) if registry is not None else frozenset()  # create_endpoint: false
    for model in sorted((model for model in models if model.name not in hidden), key=lambda m: m.name):
        input_ref = _register(schemas, model.input_schema)
        output_ref = _register(schemas, model.output_schema)
        provenance = {"model_name": {"type": "string"}, "model_version": {"type": "string"}}
        single = {
            "type": "object",
            "required": ["model_name", "model_version", "output"],
            "properties": provenance | {"output": output_ref},
        }
        batch = {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": provenance | {"outputs": {"type": "array", "items": output_ref}},
        }
        base = f"/api/models/{model.name}"
        document["paths"][f"{base}/prediction"] = {"post": _operation(model, "prediction", input_ref, single)}
        document["paths"][f"{base}/predictions"] = {
            "post": _operation(model, "predictions", {"type": "array", "items": input_ref, "minItems": 1}, batch)
        }
    return document


def _register(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    title = str(schema.get("title", model.__name__))
    schemas[title] = schema
    return {"$ref": REF.format(model=title)}


def _operation(model: ModelDescription, kind: str, request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    return {
        "tags": ["models"],
        "summary": f"{model.display_name}: {'one prediction' if kind == 'prediction' else 'a batch of predictions'}",
        "description": model.description,
        "operationId": f"{model.name}_{kind}",
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {
            "200": {
                "description": "Prediction with the model name and version that answered",
                "content": {"application/json": {"schema": response}},
            },
            "400": {"description": "Malformed JSON", **error},
            "404": {"description": "Unknown model", **error},
            "413": {"description": "Body or batch too large", **error},
            "422": {"description": "Input does not match the schema", **error},
            "503": {"description": "Model not ready", **error},
        },
    }
