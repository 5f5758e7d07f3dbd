"""One log line per HTTP request, and a request id every response carries (X-Request-ID: the client's, when sane).

The line holds the method, path, status, latency, model, version, protocol, client address and, with auth on, the
caller (`api_key:<name>` or `token:<subject>`); never the query string, the body, headers or credentials. Access
lines bypass the `logging` machinery (which costs more than a small model's prediction): each is one orjson call
into a buffer flushed at most every FLUSH_SECONDS, in the same JSON shape `JsonFormatter` gives every other
sealserve log record.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealserve.serve.observability.tracing.ids import TRACE_IDS, hex_ids
from sealserve.serve.request.paths import protocol_of_path
from sealserve.serve.request.principal import Principal
from sealserve.serve.request.request_ids import REQUEST_ID_HEADER, RequestIds

ACCESS_LOGGER = "sealserve.access"
MAX_LOGGED_PATH = 256
FLUSH_SECONDS = 0.5
LogFormat = Literal["json", "text"]
NEWLINE = orjson.OPT_APPEND_NEWLINE
TEXT_FIELDS = ("latency_ms", "model", "version", "subject", "request_id", "trace_id", "span_id")


class AccessLines:
    """Formats access lines and writes them in bulk: to stderr by default, or to any binary stream (tests)."""

    def __init__(self, log_format: LogFormat = "json", stream: BinaryIO | None = None) -> None:
        self.log_format = log_format
        self.stream = stream if stream is not None else io.BufferedWriter(io.FileIO(os.dup(sys.stderr.fileno()), "wb"), 1 << 16)
        self._flushed = time.monotonic()
        self._lock = threading.Lock()
        self._second = -1
        self._stamp = ""

    def write(self, fields: dict[str, Any]) -> None:
        now = time.time()
        line = self._json(now, fields) if self.log_format == "json" else self._text(now, fields)
        with self._lock:
            self.stream.write(line)
            if time.monotonic() - self._flushed >= FLUSH_SECONDS:
                self.flush_locked()

    def flush(self) -> None:
        with self._lock:
            self.flush_locked()

    def flush_locked(self) -> None:
        self.stream.flush()
        self._flushed = time.monotonic()

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{int((now - second) * 1000):03d}+00:00"

    def _json(self, now: float, fields: dict[str, Any]) -> bytes:
        message = f"{fields['method']} {fields['path']} {fields['status']}"
        return orjson.dumps(
            {"time": self._time(now), "level": "info", "logger": ACCESS_LOGGER, "message": message, **fields}, option=NEWLINE
        )

    def _text(self, now: float, fields: dict[str, Any]) -> bytes:
        shown = " ".join(f"{key}={fields[key]}" for key in TEXT_FIELDS if fields.get(key) is not None)
        return f"{self._time(now)} INFO {ACCESS_LOGGER}: {fields['method']} {fields['path']} {fields['status']} {shown}\n".encode()


class AccessLog:
    """ASGI middleware: assigns the request id (scope["state"]["request_id"]), echoes it, writes the access line."""

    def __init__(self, app: ASGIApp, lines: AccessLines | None = None) -> None:
        self.app, self.lines = app, lines
        self.request_ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = None
        for key, value in scope["headers"]:
            if key == REQUEST_ID_HEADER:
                sent = value
                break
        request_id = self.request_ids(sent)
        scope.setdefault("state", {})["request_id"] = request_id
        answer: dict[str, Any] = {"status": 500, "headers": ()}
        echoed = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                answer["status"], answer["headers"] = message["status"], headers
                kept = [item for item in headers if item[0] != REQUEST_ID_HEADER]
                kept.append(echoed)
                message = {**message, "headers": kept}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.lines is not None:
                self.lines.write(_fields(scope, request_id, answer, time.perf_counter() - started))


def _fields(scope: Scope, request_id: str, answer: dict[str, Any], seconds: float) -> dict[str, Any]:
    model = version = None
    for key, value in answer["headers"]:
        if key == b"x-model-name":
            model = value.decode("latin-1")
        elif key == b"x-model-version":
            version = value.decode("latin-1")
    client = scope.get("client")
    path = scope["path"]
    user = scope.get("user")
    fields = {
        "request_id": request_id,
        "method": scope["method"],
        "path": path[:MAX_LOGGED_PATH],
        "status": answer["status"],
        "latency_ms": round(seconds * 1000, 3),
        "model": model,
        "version": version,
        "protocol": _protocol_name(path),
        "client": client[0] if client else None,
        "subject": user.identity if isinstance(user, Principal) else None,
    }
    ids = scope["state"].get(TRACE_IDS)  # the request's trace and span ids, when tracing is on
    if ids is not None:
        fields["trace_id"], fields["span_id"] = hex_ids(ids)
    return fields


def _protocol_name(path: str) -> str | None:
    protocol = protocol_of_path(path)
    return protocol.value if protocol is not None else None


class JsonFormatter(logging.Formatter):
    """Every other log record as one JSON line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(log_format: LogFormat) -> None:
    """The process's log handler (each worker process calls this itself); uvicorn's own loggers keep their handlers."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
