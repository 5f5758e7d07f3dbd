"""Inference events in KServe's inference logger format: CloudEvents in binary mode, encoded by the cloudevents SDK.

The attributes are KServe's, so its consumers read the events unchanged: ce-type `…inference.request` or
`…inference.response`, ce-id the request id (the same on both), ce-source, ce-time, and the extensions
inferenceservicename, namespace, endpoint and component; modelversion is sealserve's own. The data is the body.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sealserve.serve.config import Server
from sealserve.serve.model_options import Events
from sealserve.serve.observability.records import InferenceRecord, timestamp
from sealserve.serve.observability.redaction import Redaction
from sealserve.serve.request.responses import Exchange

try:
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent
except ImportError:  # cloudevents 2 keeps this API under cloudevents.v1
    from cloudevents.v1.conversion import to_binary  # type: ignore[import-not-found,no-redef,unused-ignore]
    from cloudevents.v1.http import CloudEvent  # type: ignore[import-not-found,no-redef,unused-ignore]

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
TYPES = {"all": (REQUEST, RESPONSE), "request": (REQUEST,), "response": (RESPONSE,)}
COMPONENT = "predictor"
NAMESPACE_ENV = "POD_NAMESPACE"
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (recognized, never bound)
PLAIN = re.compile(r"[A-Za-z0-9._:+-]+")  # values binary mode carries in a header as they are
MAX_TEMPLATES = 64
OWN = frozenset({"ce-id", "ce-time"})  # the headers that differ between events of one kind and model version


@dataclass(frozen=True)
class Message:
    """One event in binary mode: the headers every event of its kind and model version shares, its own, its body."""

    shared: Mapping[str, str]
    own: Mapping[str, str]
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        return {**self.shared, **self.own}


@dataclass(frozen=True)
class EventOrigin:
    """Where every event of this server says it comes from: ce-source, and the namespace extension when one is known."""

    source: str
    namespace: str | None = None

    @classmethod
    def of(cls, server: Server, environ: Mapping[str, str]) -> EventOrigin:
        """The server's URL (its host name when it listens on every interface) and the pod's namespace (POD_NAMESPACE)."""
        host = socket.gethostname() if server.host in WILDCARDS else server.host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if server.tls is not None else "http"
        return cls(f"{scheme}://{host}:{server.port}/", environ.get(NAMESPACE_ENV) or None)


class EventBuilder:
    """One model's events for an answered inference: which (the mode), what they say (attributes), what they carry
    (the bodies, redacted). Runs on the sender thread, never on the request path."""

    def __init__(self, settings: Events, origin: EventOrigin) -> None:
        self.types = TYPES[settings.mode]
        self.source = settings.source or origin.source
        self.namespace = origin.namespace
        self.redaction = Redaction(settings.redact) if settings.redact else None
        self._templates: dict[tuple[str, str, str, str], dict[str, str]] = {}

    def messages(self, record: InferenceRecord, exchange: Exchange) -> list[Message]:
        return [
            self.message(kind, record, record.received, self.request_data(record, exchange.request_json()))
            if kind == REQUEST
            else self.message(kind, record, record.answered, self.response_data(record, exchange.response_json()))
            for kind in self.types
        ]

    def attributes(self, kind: str, record: InferenceRecord, at: float) -> dict[str, str]:
        attributes = {
            "specversion": "1.0",
            "type": kind,
            "source": self.source,
            "id": record.request_id,
            "time": timestamp(at),
            "datacontenttype": "application/json",
            "inferenceservicename": record.model,
            "endpoint": record.protocol.value,
            "component": COMPONENT,
            "modelversion": record.version,
        }
        if self.namespace:
            attributes["namespace"] = self.namespace
        # traceparent joins here, per event like id and time, once requests carry a trace context
        return attributes

    def message(self, kind: str, record: InferenceRecord, at: float, data: bytes) -> Message:
        """The SDK encodes each kind of event once per model version (70 µs a call); an event then sets its id and time,
        which need no escaping in a header (anything else goes through the SDK whole)."""
        when = timestamp(at)
        if not (PLAIN.fullmatch(record.request_id) and PLAIN.fullmatch(when)):
            return encode(self.attributes(kind, record, at), data)
        key = (kind, record.model, record.version, record.protocol.value)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates.clear()
            template = self._templates[key] = {
                name: value for name, value in encode(self.attributes(kind, record, at), b"").headers.items() if name not in OWN
            }
        return Message(template, {"ce-id": record.request_id, "ce-time": when}, data)

    def request_data(self, record: InferenceRecord, body: bytes) -> bytes:
        if self.redaction is None:
            return body
        return orjson.dumps(self.redaction.request(record.protocol, parse(body), record.features))

    def response_data(self, record: InferenceRecord, body: bytes) -> bytes:
        if self.redaction is None:
            return body
        return orjson.dumps(self.redaction.response(record.protocol, parse(body)))


def encode(attributes: dict[str, str], data: bytes) -> Message:
    """Binary content mode: attributes as ce- headers, the data as the body, exactly as given."""
    headers, body = to_binary(CloudEvent(attributes, data), data_marshaller=_as_is)
    return Message(dict(headers), {}, body if isinstance(body, bytes) else str(body).encode())


def _as_is(data: Any) -> Any:
    return data


def parse(body: bytes) -> Any:
    """A body the server accepted: orjson, or the standard parser for the NaN tokens some protocols accept."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
