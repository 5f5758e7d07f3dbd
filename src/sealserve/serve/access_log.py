"""One log line per HTTP request, and a request id every response carries (X-Request-ID: the client's, when sane).

The line holds the method, path, status, latency, model, version, protocol and client address; never the query
string, the body, headers or credentials. `JsonFormatter` writes every sealserve log record as one JSON object.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("sealserve.access")
REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_LOGGED_PATH = 256
FIELDS = "fields"  # the `extra` key access records carry their fields under


def request_id_of(sent: str | None) -> str:
    """The client's id when it is short and plain (it is echoed and logged), else a fresh one."""
    return sent if sent is not None and SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


class AccessLog:
    """ASGI middleware: assigns the request id (scope["state"]["request_id"]), echoes it, logs the request when done."""

    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app, self.enabled = app, enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = next((value.decode("latin-1") for key, value in scope["headers"] if key == REQUEST_ID_HEADER), None)
        request_id = request_id_of(sent)
        scope.setdefault("state", {})["request_id"] = request_id
        answer: dict[str, Any] = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(key, value) for key, value in message.get("headers", []) if key != REQUEST_ID_HEADER]
                answer["status"] = message["status"]
                answer["headers"] = headers
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.enabled:
                self._log(scope, request_id, answer, time.perf_counter() - started)

    def _log(self, scope: Scope, request_id: str, answer: dict[str, Any], seconds: float) -> None:
        headers = dict(answer.get("headers", []))
        client = scope.get("client")
        fields = {
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"][:MAX_LOGGED_PATH],
            "status": answer["status"],
            "latency_ms": round(seconds * 1000, 3),
            "model": headers.get(b"x-model-name", b"").decode("latin-1") or None,
            "version": headers.get(b"x-model-version", b"").decode("latin-1") or None,
            "protocol": protocol_of_path(scope["path"]),
            "client": client[0] if client else None,
        }
        logger.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra={FIELDS: fields})


def protocol_of_path(path: str) -> str | None:
    """Which API a path belongs to (None: probes, metadata pages, documentation)."""
    for prefix, protocol in PROTOCOL_PREFIXES:
        if path.startswith(prefix):
            return protocol
    return None


PROTOCOL_PREFIXES = (
    ("/api/models/", "native"),
    ("/v1/models/", "kserve_v1"),
    ("/v2/", "v2_rest"),
    ("/seldon/", "seldon"),
    ("/api/v1.0/", "seldon"),
)


class JsonFormatter(logging.Formatter):
    """Each record as one JSON line: time, level, logger, message, and an access record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, FIELDS, {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines (`make serve`): access records end with their latency, model and request id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, FIELDS, None)
        if fields:
            extra = " ".join(
                f"{key}={fields[key]}" for key in ("latency_ms", "model", "version", "request_id") if fields.get(key) is not None
            )
            text = f"{text} {extra}"
        return text


def configure_logging(log_format: Literal["json", "text"]) -> None:
    """The process's log handler (each worker process calls this itself); uvicorn's own loggers keep their handlers."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
