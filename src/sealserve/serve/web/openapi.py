"""The OpenAPI contract: the fixed routes as openapi_routes.py describes them, plus one typed path pair per served model
(unless its endpoints are off)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from sealserve.bundle.metadata import BundleMetadata
from sealserve.bundle.schema import input_model, output_model
from sealserve.model import MLModel
from sealserve.runtime.bundle_model import BundleModel
from sealserve.serve.request.protocols.native import without_endpoints
from sealserve.serve.web.openapi_schemas import REF, ROUTES, SCALAR, SCHEMAS, native_batch_operation, native_inference_operation

PATH_PARAMETERS = {
    "name": "A configured model's name",
    "version": "The served version (any other is a 404)",
    "namespace": "The Kubernetes namespace of Seldon's ingress path (ignored)",
}

FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")  # FastAPI's default 422 (referenced only by routes not described)


@dataclass(frozen=True)
class ModelDescription:
    """What the contract needs to know about a model, obtainable without deserializing it."""

    name: str
    display_name: str
    description: str
    input_schema: type[BaseModel]
    output_schema: type[BaseModel]
    explained: bool = True  # a bundle model: it has explanation routes (a class model's would always answer 422)

    @classmethod
    def of_model(cls, name: str, model: MLModel) -> ModelDescription:
        explained = isinstance(model, BundleModel)
        return cls(name, model.display_name, model.description, model.input_schema, model.output_schema, explained)

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
    schemas.update(SCHEMAS)
    registry = getattr(app.state, "registry", None)
    hidden = without_endpoints(registry.states) if registry is not None else frozenset()  # create_endpoint: false
    dataplane = getattr(app.state, "dataplane", None)
    rows = dataplane.limits.max_batch_size if dataplane is not None else None  # limits.max_batch_size: more is a 413
    documented = sorted((model for model in models if model.name not in hidden), key=lambda m: m.name)
    _describe_routes(document, [model.name for model in documented])
    for model in documented:
        input_ref = _register(schemas, model.input_schema)
        output_ref = _register(schemas, model.output_schema)
        single, batch = _answer("output", output_ref), _answer("outputs", {"type": "array", "items": output_ref})
        base = f"/api/models/{model.name}"
        document["paths"][f"{base}/prediction"] = {"post": _operation(model, "prediction", input_ref, single)}
        document["paths"][f"{base}/predictions"] = {
            "post": _operation(model, "predictions", batch_request(schemas, input_ref, rows), batch)
        }
        explained, explained_many = _answer("explanation", EXPLANATION), _answer("explanations", {"type": "array", "items": EXPLANATION})
        if not model.explained:
            continue
        document["paths"][f"{base}/explanation"] = {"post": _operation(model, "explanation", input_ref, explained)}
        document["paths"][f"{base}/explanations"] = {
            "post": _operation(model, "explanations", batch_request(schemas, input_ref, rows), explained_many)
        }
    used = json.dumps(document["paths"])
    for name in FASTAPI_VALIDATION:
        if REF.format(model=name) not in used:
            schemas.pop(name, None)
    return document


def _describe_routes(document: dict[str, Any], names: list[str]) -> None:
    """Each fixed route's request body and answers (openapi_routes.py) instead of FastAPI's guesses; model names as examples."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            contract = ROUTES.get((method, path))
            if contract is None:
                continue
            body = contract.request_body()
            if body is not None:
                operation["requestBody"] = body
            operation["responses"] = contract.responses()
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") != "path":
                    continue
                parameter["description"] = PATH_PARAMETERS.get(parameter["name"], "")
                parameter["schema"].pop("title", None)
                if parameter["name"] == "name" and names:
                    parameter["examples"] = {name: {"value": name} for name in names}


def _register(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    title = str(schema.get("title", model.__name__))
    schemas[title] = schema
    return {"$ref": REF.format(model=title)}


def batch_request(schemas: dict[str, Any], input_ref: dict[str, str], rows: int | None) -> dict[str, Any]:
    """Records, or the same rows in MLflow's column shapes: `inputs` typed per feature, `dataframe_split` rows positional."""
    record = schemas[input_ref["$ref"].rsplit("/", 1)[-1]]
    features = record.get("properties", {})
    most = {} if rows is None else {"maxItems": rows}
    columns = {name: {"type": "array", "items": feature, "minItems": 1, **most} for name, feature in features.items()}
    split = {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"enum": list(features)}, "uniqueItems": True},
            "data": {"type": "array", "items": {"type": "array", "items": SCALAR}, "minItems": 1, **most},
            "index": {"type": "array", "description": "ignored"},
        },
        "additionalProperties": False,
    }
    return {
        "oneOf": [
            {"type": "array", "items": input_ref, "minItems": 1, **most},
            {"type": "object", "required": ["dataframe_split"], "properties": {"dataframe_split": split}, "additionalProperties": False},
            {
                "type": "object",
                "required": ["inputs"],
                "properties": {"inputs": {"type": "object", "properties": columns, "additionalProperties": False, "minProperties": 1}},
                "additionalProperties": False,
            },
        ]
    }


SUMMARIES = {
    "prediction": "one prediction",
    "predictions": "a batch of predictions",
    "explanation": "why: one record's explanation",
    "explanations": "why: a batch of explanations",
}
EXPLAIN_QUERY: list[dict[str, Any]] = [
    {
        "name": "top",
        "in": "query",
        "required": False,
        "description": "List the k largest reasons.",
        "schema": {"type": "integer", "minimum": 1},
    },
    {
        "name": "class",
        "in": "query",
        "required": False,
        "description": "A class label, or `all` (default: the predicted class); classifiers only.",
        "schema": {"type": "string"},
    },
]
EXPLANATION = {
    "type": "object",
    "description": "docs/explanations.md: the method, the output explained, and per client feature its contribution",
    "required": ["method", "output"],
    "properties": {
        "method": {"enum": ["tree_shap", "linear", "permutation"]},
        "output": {"enum": ["log_odds", "margin", "probability", "value", "score"]},
        "explains": {},
        "base_value": {"type": "number"},
        "value": {"type": "number"},
        "contributions": {"type": "object", "additionalProperties": {"type": "number"}},
        "top": {"type": "array", "items": {"type": "object"}},
        "explanations": {"type": "array", "items": {"type": "object"}},
        "evaluations": {"type": "integer"},
    },
}


def _answer(field: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A native route's answer: the model's name and version, and `field` holding `schema`."""
    provenance = {"model_name": {"type": "string"}, "model_version": {"type": "string"}}
    return {"type": "object", "required": ["model_name", "model_version", field], "properties": provenance | {field: schema}}


def _operation(model: ModelDescription, kind: str, request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    contract = native_batch_operation(request, response) if kind == "predictions" else native_inference_operation(request, response)
    operation: dict[str, Any] = {
        "tags": ["models"],
        "summary": f"{model.display_name}: {SUMMARIES[kind]}",
        "description": model.description,
        "operationId": f"{model.name}_{kind}",
        "requestBody": contract.request_body(),
        "responses": contract.responses(),
    }
    if kind.startswith("explanation"):
        operation["parameters"] = EXPLAIN_QUERY
    return operation
