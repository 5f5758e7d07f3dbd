"""The contract of the fixed routes: each operation's request body and every answer it gives, in its protocol's shapes.

FastAPI only sees that these endpoints return a `Response`, so it would document a 200 of any JSON and a 422 that none
of them answers. `build_openapi` replaces those with the operations below. Error bodies differ per protocol, as the
protocols define them: the native API's ``{"error": {"code", "message", "details"?}}``, KServe V1's and the Open
Inference Protocol's ``{"error": "..."}``, Seldon's ``{"status": {"code", "info", "reason", "status": "FAILURE"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
REF = "#/components/schemas/{model}"


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties, **extra}


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NULLABLE_STRING = {"type": ["string", "null"]}
SCALAR = {"type": ["number", "integer", "string", "boolean", "null"]}
PARAMETERS = {"type": "object", "description": "Protocol parameters (free-form)"}

SCHEMAS: dict[str, Schema] = {
    # Errors, one shape per protocol family.
    "Error": {
        "title": "Error",
        "description": "The native API's error; `details` lists per-field problems (at most 50, then one summary entry).",
        **_object(
            {
                "error": _object(
                    {
                        "code": STRING,
                        "message": STRING,
                        "details": {"type": "array", "items": {"type": "object"}},
                    },
                    ("code", "message"),
                )
            },
            ("error",),
        ),
    },
    "ProtocolError": {
        "title": "ProtocolError",
        "description": "KServe V1's and the Open Inference Protocol's error: one message.",
        **_object({"error": STRING}, ("error",)),
    },
    "SeldonError": {
        "title": "SeldonError",
        "description": "Seldon's error status.",
        **_object(
            {
                "status": _object(
                    {"code": INTEGER, "info": STRING, "reason": STRING, "status": {"type": "string", "enum": ["FAILURE"]}},
                    ("code", "info", "reason", "status"),
                )
            },
            ("status",),
        ),
    },
    # Native listing, detail, drift and probes.
    "ModelSummary": {
        "title": "ModelSummary",
        "description": "A configured model's state; a served one also has its version, signer and digest.",
        **_object(
            {
                "name": STRING,
                "ready": BOOLEAN,
                "error": NULLABLE_STRING,
                "ref": STRING,
                "pinned": {**NULLABLE_STRING, "description": "The pinned version, if an admin pinned one"},
                "storage_error": NULLABLE_STRING,
                "unloaded": BOOLEAN,
                "display_name": STRING,
                "description": STRING,
                "version": STRING,
                "signer": NULLABLE_STRING,
                "digest": NULLABLE_STRING,
                "provenance": {
                    "type": ["object", "null"],
                    "description": "Who signed (method key, certificate or sigstore; identity; issuer), when the log saw it, "
                    "the bundle digest and the trust policy rule that admitted it",
                    "additionalProperties": True,
                },
                "loaded_at": {"type": "string", "format": "date-time"},
                "runtime": STRING,
                "compiled_skipped": STRING,
            },
            ("name", "ready", "error"),
        ),
    },
    "ModelList": {"title": "ModelList", **_object({"models": {"type": "array", "items": ref("ModelSummary")}}, ("models",))},
    "ModelDetail": {
        "title": "ModelDetail",
        "description": "A model's state and, once served, its input and output JSON Schemas, signed metadata and drift status.",
        "allOf": [
            ref("ModelSummary"),
            {
                "type": "object",
                "properties": {
                    "input_schema": {"type": "object"},
                    "output_schema": {"type": "object"},
                    "metadata": {"type": "object"},
                    "drift": NULLABLE_STRING,
                },
            },
        ],
    },
    "DriftReport": {
        "title": "DriftReport",
        **_object(
            {
                "model": STRING,
                "version": STRING,
                "method": {"type": "string", "enum": ["psi"]},
                "status": STRING,
                "window_rows": INTEGER,
                "thresholds": _object({"warn": {"type": "number"}, "alert": {"type": "number"}, "min_rows": INTEGER}),
                "features": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": STRING,
                            "psi": {"type": ["number", "null"]},
                            "status": STRING,
                            "bins": INTEGER,
                            "reference_count": INTEGER,
                        },
                        ("name", "psi", "status"),
                    ),
                },
            },
            ("model", "version", "method", "status", "features"),
        ),
    },
    "Liveness": {"title": "Liveness", **_object({"status": {"type": "string", "enum": ["ok"]}}, ("status",))},
    "HealthReport": {
        "title": "HealthReport",
        "description": "Readiness with every model's state and each store's health (degraded storage never makes the server unready).",
        **_object(
            {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "storage": _object(
                    {"status": {"type": "string", "enum": ["ok", "degraded"]}, "stores": {"type": "array", "items": {"type": "object"}}},
                    ("status", "stores"),
                ),
                "models": {"type": "array", "items": ref("ModelSummary")},
            },
            ("status", "storage", "models"),
        ),
    },
    "AdminAnswer": {
        "title": "AdminAnswer",
        "description": "The model's state after the action, storage health and, with several workers, one report per worker.",
        **_object(
            {"model": ref("ModelSummary"), "storage": {"type": "object"}, "workers": {"type": "array", "items": {"type": "object"}}},
            ("model", "storage"),
        ),
    },
    "CandidateView": {
        "title": "CandidateView",
        "description": "The model's candidate version (docs/rollout.md): its settings and state, its comparison with production over "
        "the recent window and since it was set (every worker's, added up), and how the last candidates ended.",
        **_object(
            {
                "model": STRING,
                "production": _object({"version": NULLABLE_STRING, "ref": NULLABLE_STRING}),
                "candidate": {"type": ["object", "null"]},
                "comparison": {"type": ["object", "null"]},
                "ended": {"type": "array", "items": {"type": "object"}},
                "workers": {"type": "array", "items": {"type": "object"}},
            },
            ("model", "production", "candidate", "comparison", "ended"),
        ),
    },
    # KServe V1.
    "KServeV1ModelList": {"title": "KServeV1ModelList", **_object({"models": {"type": "array", "items": STRING}}, ("models",))},
    "ModelReadiness": {
        "title": "ModelReadiness",
        "description": "A model's readiness; `version` once it is served.",
        **_object({"name": STRING, "ready": BOOLEAN, "version": STRING}, ("name", "ready")),
    },
    "KServeV1PredictRequest": {
        "title": "KServeV1PredictRequest",
        "description": 'A batch under "instances" (or "inputs"): each instance a list of feature values in the model\'s feature '
        "order, or an object keyed by feature name. Other fields are ignored.",
        "type": "object",
        "properties": {
            "instances": {"type": "array", "minItems": 1, "items": {"type": ["array", "object"]}},
            "inputs": {"type": "array", "minItems": 1, "items": {"type": ["array", "object"]}},
        },
        "anyOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
    },
    "KServeV1PredictResponse": {
        "title": "KServeV1PredictResponse",
        **_object({"predictions": {"type": "array"}, "model_name": STRING, "model_version": STRING}, ("predictions",)),
    },
    # Open Inference Protocol (V2).
    "V2ServerMetadata": {
        "title": "V2ServerMetadata",
        **_object({"name": STRING, "version": STRING, "extensions": {"type": "array", "items": STRING}}, ("name", "version", "extensions")),
    },
    "V2Live": {"title": "V2Live", **_object({"live": BOOLEAN}, ("live",))},
    "V2Ready": {"title": "V2Ready", **_object({"ready": BOOLEAN}, ("ready",))},
    "V2TensorMetadata": {
        "title": "V2TensorMetadata",
        **_object({"name": STRING, "datatype": STRING, "shape": {"type": "array", "items": INTEGER}}, ("name", "datatype", "shape")),
    },
    "V2ModelMetadata": {
        "title": "V2ModelMetadata",
        **_object(
            {
                "name": STRING,
                "versions": {"type": "array", "items": STRING},
                "platform": STRING,
                "inputs": {"type": "array", "items": ref("V2TensorMetadata")},
                "outputs": {"type": "array", "items": ref("V2TensorMetadata")},
            },
            ("name", "platform", "inputs", "outputs"),
        ),
    },
    "V2InferenceRequest": {
        "title": "V2InferenceRequest",
        "description": "One input tensor per feature (or one [N, features] tensor); `data` row-major, nested or flat. With "
        "the binary tensor extension, an input's `parameters.binary_data_size` replaces `data`.",
        **_object(
            {
                "id": STRING,
                "parameters": PARAMETERS,
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "name": STRING,
                            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                            "datatype": STRING,
                            "parameters": PARAMETERS,
                            "data": {"type": "array"},
                        },
                        ("name", "shape", "datatype"),
                    ),
                },
                "outputs": {"type": "array", "items": _object({"name": STRING, "parameters": PARAMETERS}, ("name",))},
            },
            ("inputs",),
        ),
    },
    "V2InferenceResponse": {
        "title": "V2InferenceResponse",
        **_object(
            {
                "model_name": STRING,
                "model_version": STRING,
                "id": STRING,
                "parameters": PARAMETERS,
                "outputs": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": STRING,
                            "shape": {"type": "array", "items": INTEGER},
                            "datatype": STRING,
                            "parameters": PARAMETERS,
                            "data": {"type": "array"},
                        },
                        ("name", "shape", "datatype", "data"),
                    ),
                },
            },
            ("model_name", "outputs"),
        ),
    },
    "V2RepositoryIndexRequest": {"title": "V2RepositoryIndexRequest", **_object({"ready": BOOLEAN})},
    "V2RepositoryIndex": {
        "title": "V2RepositoryIndex",
        "type": "array",
        "items": _object(
            {"name": STRING, "version": STRING, "state": {"type": "string", "enum": ["READY", "UNAVAILABLE", "LOADING"]}, "reason": STRING},
            ("name", "state"),
        ),
    },
    "V2RepositoryLoaded": {"title": "V2RepositoryLoaded", **_object({"name": STRING, "version": STRING}, ("name", "version"))},
    "V2RepositoryUnloaded": {
        "title": "V2RepositoryUnloaded",
        **_object({"name": STRING, "state": {"type": "string", "enum": ["UNAVAILABLE"]}}, ("name", "state")),
    },
    # Seldon.
    "SeldonMessage": {
        "title": "SeldonMessage",
        "description": "`data` holds exactly one of `ndarray` (rows, or one row of values) and `tensor` ([N, features] or [features], "
        "values row-major); `names` orders the columns (default: the model's feature order). `meta.tags` are echoed back.",
        **_object(
            {
                "data": _object(
                    {
                        "names": {"type": "array", "items": STRING},
                        "ndarray": {"type": "array"},
                        "tensor": _object(
                            {"shape": {"type": "array", "items": {"type": "integer", "minimum": 0}}, "values": {"type": "array"}},
                            ("shape", "values"),
                            additionalProperties=False,
                        ),
                    },
                    additionalProperties=False,
                ),
                "meta": _object({"puid": STRING, "tags": {"type": "object"}}),
            },
            additionalProperties=False,
        ),
    },
    "SeldonStatus": {
        "title": "SeldonStatus",
        **_object(
            {
                "status": _object(
                    {"code": INTEGER, "status": {"type": "string", "enum": ["SUCCESS", "FAILURE"]}, "info": STRING}, ("code", "status")
                ),
                "meta": _object({"requestPath": {"type": "object", "additionalProperties": STRING}}),
            },
            ("status",),
        ),
    },
}

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
MODEL_HEADERS = {
    "X-Model-Name": {"description": "The model that answered", "schema": STRING},
    "X-Model-Version": {"description": "Its version", "schema": STRING},
}


@dataclass(frozen=True)
class Answer:
    description: str
    schema: Schema | None = None
    media_type: str = JSON
    headers: dict[str, Schema] = field(default_factory=dict)
    alternatives: dict[str, Schema] = field(default_factory=dict)  # other media types the client may ask for (Accept)

    def as_openapi(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"description": self.description}
        if self.schema is not None:
            content = {self.media_type: self.schema, **self.alternatives}
            answer["content"] = {media: {"schema": schema} for media, schema in content.items()}
        if self.headers:
            answer["headers"] = self.headers
        return answer


# What each status means, per kind of route; the error shape comes from the protocol.
MALFORMED = "Malformed request: invalid JSON, or a body that does not match the protocol's envelope"
UNKNOWN = "No model of this name"
NOT_READY = "The model is not loaded yet, or its queue is full (see Retry-After)"
TOO_LARGE = "The body exceeds limits.max_body_bytes, or the batch limits.max_batch_size"
SLOW = "The body did not arrive within limits.body_timeout (the connection is closed)"
MEDIA = "The body is not declared as JSON"
MODEL_FAILED = "The model could not make a prediction (details go to the server log only)"
LOOPBACK = "Answered to loopback clients only"
WORKERS = "With several workers: the action did not take effect on every worker"
WORKER_TIMEOUT = "With several workers: a worker did not answer in time"


def errors(shape: str, statuses: dict[int, str]) -> dict[int, Answer]:
    """Error answers of one protocol; a 503 carries Retry-After."""
    return {status: Answer(text, ref(shape), headers=RETRY_AFTER if status == 503 else {}) for status, text in statuses.items()}


INFERENCE_ERRORS = {400: MALFORMED, 404: UNKNOWN, 408: SLOW, 413: TOO_LARGE, 415: MEDIA, 500: MODEL_FAILED, 503: NOT_READY}
NATIVE_INFERENCE_ERRORS = INFERENCE_ERRORS | {
    400: "Malformed JSON",
    404: "The model is unknown or has no prediction endpoint",
    422: "The input does not match the model's schema (per-field details)",
}


@dataclass(frozen=True)
class Operation:
    """One route's contract: its request body (media type → schema) and its answers."""

    answers: dict[int, Answer]
    body: dict[str, Schema] = field(default_factory=dict)
    body_required: bool = True
    body_description: str | None = None

    def request_body(self) -> dict[str, Any] | None:
        if not self.body:
            return None
        body: dict[str, Any] = {
            "required": self.body_required,
            "content": {media: {"schema": schema} for media, schema in self.body.items()},
        }
        if self.body_description:
            body["description"] = self.body_description
        return body

    def responses(self) -> dict[str, Any]:
        return {str(status): answer.as_openapi() for status, answer in sorted(self.answers.items())}


def ok(description: str, schema: Schema, headers: dict[str, Schema] | None = None) -> dict[int, Answer]:
    return {200: Answer(description, schema, headers=headers or {})}


def native_inference_operation(request: Schema, response: Schema) -> Operation:
    """A per-model prediction route of the native API."""
    return Operation(
        ok("Prediction with the model name and version that answered", response, MODEL_HEADERS) | errors("Error", NATIVE_INFERENCE_ERRORS),
        {JSON: request},
    )


ARROW_STREAM = "application/vnd.apache.arrow.stream"
BINARY = {"type": "string", "format": "binary"}
ARROW_REQUEST = (
    'A JSON array of records; MLflow\'s column shapes `{"dataframe_split": {"columns": [...], "data": [[...]]}}` '
    '(`index` ignored) and `{"inputs": {"column": [...]}}`; or an Apache Arrow IPC stream (`'
    + ARROW_STREAM
    + "`): one schema naming the model's features with plain types (no dictionary, extension, nested types or "
    "compression), then record batches. Nullable features may be left out. Every shape is validated like records: a "
    "bad value's details name its row and column."
)
ARROW_ANSWER = (
    "With `Accept: "
    + ARROW_STREAM
    + "`, the answer is an Arrow IPC stream instead: a `prediction` column and, for classifiers with probabilities, "
    "one float64 column `probability_<label>` per class; model name and version in the headers and the schema metadata."
)


def native_batch_operation(request: Schema, response: Schema) -> Operation:
    """The per-model batch route of the native API: JSON records or columns, or Arrow, answered in JSON or Arrow."""
    answers = native_inference_operation(request, response).answers | {
        200: Answer(
            f"Predictions with the model name and version that answered. {ARROW_ANSWER}",
            response,
            headers=MODEL_HEADERS,
            alternatives={ARROW_STREAM: BINARY},
        ),
        400: Answer("Malformed JSON, or an Arrow stream that cannot be read", ref("Error")),
        415: Answer("The body is neither JSON nor an Arrow IPC stream", ref("Error")),
    }
    return Operation(answers, {JSON: request, ARROW_STREAM: BINARY}, body_description=ARROW_REQUEST)


V2_BINARY = (
    "JSON, or with the binary tensor extension any media type: the Inference-Header-Content-Length header gives the length of "
    "the JSON header, and the binary tensor data follows it"
)
V2_INFER = Operation(
    ok("Outputs of the inference", ref("V2InferenceResponse"), MODEL_HEADERS)
    | errors("ProtocolError", INFERENCE_ERRORS | {404: "No model of this name, or not this version"}),
    {JSON: ref("V2InferenceRequest"), "application/octet-stream": {"type": "string", "format": "binary"}},
    body_description=V2_BINARY,
)
V2_MODEL_METADATA = Operation(
    ok("The model's versions, platform and tensors", ref("V2ModelMetadata"), MODEL_HEADERS)
    | errors("ProtocolError", {404: "No model of this name, or not this version", 503: NOT_READY})
)
V2_MODEL_READY = Operation(
    ok("The model is ready", ref("ModelReadiness"), MODEL_HEADERS)
    | {503: Answer("The model is not ready", {"anyOf": [ref("ModelReadiness"), ref("ProtocolError")]})}
    | errors("ProtocolError", {404: "No model of this name, or not this version"})
)
SELDON_PREDICT_ERRORS = INFERENCE_ERRORS | {404: UNKNOWN}
SELDON_PREDICT = Operation(
    ok("Predictions (probabilities with the class labels as names, when the model has them)", ref("SeldonMessage"), MODEL_HEADERS)
    | errors("SeldonError", SELDON_PREDICT_ERRORS),
    {JSON: ref("SeldonMessage")},
)

ROUTES: dict[tuple[str, str], Operation] = {
    # Native API.
    ("get", "/api/models"): Operation(ok("Every configured model and its state", ref("ModelList"))),
    ("get", "/api/models/{name}"): Operation(ok("The model", ref("ModelDetail")) | errors("Error", {404: UNKNOWN})),
    ("get", "/api/models/{name}/drift"): Operation(
        ok("Drift per feature over the recent window", ref("DriftReport"), MODEL_HEADERS)
        | errors("Error", {404: "No model of this name, or no training statistics to compare with", 503: NOT_READY})
    ),
    ("get", "/api/models/{name}/candidate"): Operation(
        ok("The model's candidate and its comparison with production", ref("CandidateView")) | errors("Error", {404: UNKNOWN})
    ),
    ("get", "/api/health"): Operation(ok("The process answers", ref("Liveness"))),
    ("get", "/api/health/ready"): Operation(
        ok("Every model is verified and loaded", ref("HealthReport")) | {503: Answer("Not every model is loaded", ref("HealthReport"))}
    ),
    ("get", "/api/health/startup"): Operation(
        ok("The first load of every model has succeeded", ref("HealthReport"))
        | {503: Answer("Start-up has not finished", ref("HealthReport"))}
    ),
    # Admin API (mounted only when admin.enabled).
    ("post", "/api/admin/models/{name}/reload"): Operation(
        ok("The model after the reload", ref("AdminAnswer"))
        | errors("Error", {403: LOOPBACK, 404: UNKNOWN, 409: WORKERS, 504: WORKER_TIMEOUT})
    ),
    ("put", "/api/admin/models/{name}/pin"): Operation(
        ok("The model serving the pinned version", ref("AdminAnswer"))
        | errors(
            "Error",
            {
                400: "The body is not readable as JSON text",
                403: LOOPBACK,
                404: UNKNOWN,
                409: "The version cannot be served (not stored, not verified, or a class model); or " + WORKERS.lower(),
                422: 'The body is not {"version": "..."}',
                504: WORKER_TIMEOUT,
            },
        ),
        {JSON: ref("PinRequest")},
    ),
    ("delete", "/api/admin/models/{name}/pin"): Operation(
        ok("The model following its configured ref again", ref("AdminAnswer"))
        | errors("Error", {403: LOOPBACK, 404: UNKNOWN, 409: WORKERS, 504: WORKER_TIMEOUT})
    ),
    ("put", "/api/admin/models/{name}/candidate"): Operation(
        ok("The model with its new candidate", ref("CandidateView"))
        | errors(
            "Error",
            {
                400: "The body is not readable as JSON text",
                403: LOOPBACK,
                404: UNKNOWN,
                409: "The candidate cannot be loaded (not stored, not verified, the version production serves, or a class model); "
                "or " + WORKERS.lower(),
                422: "The body is not a candidate's settings",
                504: WORKER_TIMEOUT,
            },
        ),
        {JSON: ref("Candidate")},
    ),
    ("post", "/api/admin/models/{name}/candidate/promote"): Operation(
        ok("The candidate promoted (the alias moved, production reloaded); it heads `ended`", ref("CandidateView"))
        | errors(
            "Error",
            {
                403: LOOPBACK + "; or the candidate was not set with allow_promote (the answer names the `sealserve promote` to run)",
                404: "No model of this name, or it has no loaded candidate",
                409: "The model is pinned or follows a fixed version, or the store refused the write; or " + WORKERS.lower(),
                504: WORKER_TIMEOUT,
            },
        ),
    ),
    ("delete", "/api/admin/models/{name}/candidate"): Operation(
        ok("The model without a candidate; the aborted one heads `ended`", ref("CandidateView"))
        | errors(
            "Error",
            {
                400: "The body is not readable as JSON text",
                403: LOOPBACK,
                404: "No model of this name, or it has no candidate",
                409: WORKERS,
                422: 'The body is not {"reason": "..."}',
                504: WORKER_TIMEOUT,
            },
        ),
        {JSON: ref("AbortRequest")},
        body_required=False,
    ),
    # KServe V1.
    ("get", "/v1/models"): Operation(ok("Names of the configured models", ref("KServeV1ModelList"))),
    ("get", "/v1/models/{name}"): Operation(
        ok("The model is ready", ref("ModelReadiness"), MODEL_HEADERS)
        | {503: Answer("The model is not ready", ref("ModelReadiness"))}
        | errors("ProtocolError", {404: UNKNOWN})
    ),
    ("post", "/v1/models/{name}:predict"): Operation(
        ok("One prediction per instance", ref("KServeV1PredictResponse"), MODEL_HEADERS) | errors("ProtocolError", INFERENCE_ERRORS),
        {JSON: ref("KServeV1PredictRequest")},
    ),
    # Open Inference Protocol (V2).
    ("get", "/v2"): Operation(ok("Server name, version and extensions", ref("V2ServerMetadata"))),
    ("get", "/v2/health/live"): Operation(ok("The server is live", ref("V2Live"))),
    ("get", "/v2/health/ready"): Operation(
        ok("Every model is ready", ref("V2Ready")) | {503: Answer("Not every model is ready", ref("V2Ready"))}
    ),
    ("get", "/v2/models/{name}"): V2_MODEL_METADATA,
    ("get", "/v2/models/{name}/versions/{version}"): V2_MODEL_METADATA,
    ("get", "/v2/models/{name}/ready"): V2_MODEL_READY,
    ("get", "/v2/models/{name}/versions/{version}/ready"): V2_MODEL_READY,
    ("post", "/v2/models/{name}/infer"): V2_INFER,
    ("post", "/v2/models/{name}/versions/{version}/infer"): V2_INFER,
    # The V2 model repository extension (only with protocols.v2_repository; loopback clients only).
    ("post", "/v2/repository/index"): Operation(
        ok("Every configured model and its state", ref("V2RepositoryIndex"))
        | errors("ProtocolError", {400: MALFORMED, 403: LOOPBACK, 408: SLOW, 413: TOO_LARGE, 415: MEDIA}),
        {JSON: ref("V2RepositoryIndexRequest")},
        body_required=False,
    ),
    ("post", "/v2/repository/models/{name}/load"): Operation(
        ok("The model was verified and loaded again", ref("V2RepositoryLoaded"), MODEL_HEADERS)
        | errors(
            "ProtocolError",
            {400: "The model failed to load (the served version, if any, stays)", 403: LOOPBACK, 404: UNKNOWN, 504: WORKER_TIMEOUT},
        )
    ),
    ("post", "/v2/repository/models/{name}/unload"): Operation(
        ok("The model is no longer served", ref("V2RepositoryUnloaded"))
        | errors("ProtocolError", {403: LOOPBACK, 404: UNKNOWN, 409: WORKERS, 504: WORKER_TIMEOUT})
    ),
    # Seldon.
    ("post", "/api/v1.0/predictions"): Operation(
        SELDON_PREDICT.answers | errors("SeldonError", {404: "The server serves several models (use the ingress path)"}),
        SELDON_PREDICT.body,
    ),
    ("post", "/seldon/{namespace}/{name}/api/v1.0/predictions"): SELDON_PREDICT,
    ("get", "/health/ping"): Operation({200: Answer("The process answers", {"type": "string", "enum": ["pong"]}, "text/plain")}),
    ("get", "/health/status"): Operation(
        ok("Every model is ready", ref("SeldonStatus")) | {503: Answer("Not every model is ready", ref("SeldonStatus"))}
    ),
}
