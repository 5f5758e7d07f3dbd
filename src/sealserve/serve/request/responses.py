"""JSON responses shared by every router: orjson bytes, model provenance headers, status summaries."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from sealserve.runtime.bundle_model import BundleModel
from sealserve.serve.lifecycle.registry import ModelState
from sealserve.serve.lifecycle.served import ServedModel


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, media_type="application/json", headers=headers
    )


def model_headers(served: ServedModel) -> dict[str, str]:
    return {"X-Model-Name": served.name, "X-Model-Version": served.version}


HEADERS = "headers"  # ServedModel.attachments key: the model's answer headers, encoded once
JSON_TYPE = (b"content-type", b"application/json")


class JsonAnswer(Response):
    """A 200 JSON answer from a model, its headers encoded once per model version: the same status, body and headers
    (in the same order) as `json_response(content, headers=model_headers(served))`, without Starlette's per-call header build."""

    media_type = "application/json"

    def __init__(self, content: Any, served: ServedModel) -> None:
        self.status_code, self.background = 200, None
        self.body = body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        provenance = served.attachments.get(HEADERS)
        if provenance is None:
            headers = model_headers(served).items()
            provenance = served.attachments[HEADERS] = [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers]
        self.raw_headers = [*provenance, (b"content-length", b"%d" % len(body)), JSON_TYPE]


def describe_state(state: ModelState) -> dict[str, Any]:
    served = state.served
    summary: dict[str, Any] = {"name": state.name, "ready": state.ready, "error": state.error}
    if state.ref is not None:
        summary |= {"ref": state.ref, "pinned": state.pinned, "storage_error": state.storage_error}
    if state.unloaded:
        summary["unloaded"] = True
    if served is not None:
        summary |= {
            "display_name": served.model.display_name,
            "description": served.model.description,
            "version": served.version,
            "signer": served.signer,
            "digest": served.digest,
            "provenance": served.provenance,
            "loaded_at": served.loaded_at.isoformat(),
        }
        if isinstance(served.model, BundleModel):
            summary["runtime"] = served.model.runtime_name
            if served.model.compiled_skipped is not None:
                summary["compiled_skipped"] = served.model.compiled_skipped
    return summary


class Exchange(typing.Protocol):
    """One answered inference's request and response bodies as JSON, rendered only when a hook asks (off the request path)."""

    def request_json(self) -> bytes: ...

    def response_json(self) -> bytes: ...


@dataclass(frozen=True)
class JsonBodies:
    """A REST exchange: the JSON bodies exactly as received and as answered."""

    request: bytes
    response: bytes

    def request_json(self) -> bytes:
        return self.request

    def response_json(self) -> bytes:
        return self.response
