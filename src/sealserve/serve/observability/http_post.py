"""A keep-alive HTTP/1.1 POST on the standard library's socket and ssl, for the event sender.

The sender shares the interpreter with the request path, so its CPU matters: http.client spent about 240 µs of CPU
per POST on a local sink (two sends, an email-parser for the response headers), this about 35 (one send, a status
line and the few headers that frame the body). Only what a sink's answer needs is read: its status.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Mapping
from typing import BinaryIO
from urllib.parse import urlsplit

MAX_LINE = 8192
MAX_HEADERS = 100
MAX_DRAINED = 1 << 20  # a longer answer body closes the connection instead of being read


class HttpError(OSError):
    """The sink's answer could not be read as HTTP/1.1."""


class HttpPost:
    """POSTs to one URL over one connection, reopened when the sink or a failure closes it."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.tls else 80)
        self.context = (context or ssl.create_default_context()) if self.tls else None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._start = f"POST {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n".encode("ascii")
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None

    def post(self, headers: Mapping[str, str], body: bytes, timeout: float) -> int:
        """The status of the answer; OSError when the sink cannot be reached or read within `timeout` seconds. A kept
        connection the sink closed while idle is reopened once, without counting as a failure."""
        request = self._head(headers, len(body)) + body
        deadline = time.monotonic() + timeout
        reused = self._sock is not None
        try:
            return self._exchange(request, timeout)
        except OSError as exc:
            self.close()
            if not (reused and isinstance(exc, ConnectionError | HttpError)) or time.monotonic() >= deadline:
                raise
        try:
            return self._exchange(request, max(deadline - time.monotonic(), 0.001))
        except OSError:
            self.close()
            raise

    def abort(self) -> None:
        """From another thread: end a POST in flight at once (its reads fail); the sender's thread then closes."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: TLS's own would unhook its state mid-read

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def _exchange(self, request: bytes, timeout: float) -> int:
        sock, reader = self._connect(timeout)
        sock.sendall(request)
        status, keep = self._answer(reader)
        if not keep:
            self.close()
        return status

    def _connect(self, timeout: float) -> tuple[socket.socket, BinaryIO]:
        if self._sock is not None and self._reader is not None:
            self._sock.settimeout(timeout)
            return self._sock, self._reader
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._sock, self._reader = sock, sock.makefile("rb")
        return sock, self._reader

    def _head(self, headers: Mapping[str, str], length: int) -> bytes:
        lines = [self._start]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(f"Content-Length: {length}\r\n\r\n".encode("ascii"))
        return b"".join(lines)

    def _answer(self, reader: BinaryIO) -> tuple[int, bool]:
        """The final status (interim 1xx answers skipped) and whether the connection may carry the next POST."""
        while True:
            version, status = _status_line(_line(reader))
            fields = _fields(reader)
            if not 100 <= status < 200:
                break
        keep = version == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
        if status in (204, 304):
            return status, keep
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return status, keep and _drain_chunks(reader)
        length = fields.get("content-length")
        if length is None:
            return status, False  # the body runs to the end of the connection: close it instead of reading
        if not length.isdigit():
            raise HttpError(f"unreadable Content-Length {length!r}")
        if int(length) > MAX_DRAINED:
            return status, False
        _read_exactly(reader, int(length))
        return status, keep


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise HttpError("the sink closed the connection without answering")
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise HttpError("an answer line is too long or cut off")
    return line


def _status_line(line: bytes) -> tuple[str, int]:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return parts[0].decode("ascii"), int(parts[1])


def _fields(reader: BinaryIO) -> dict[str, str]:
    """The framing headers (connection, content-length, transfer-encoding); the rest is skipped."""
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        if key in ("connection", "content-length", "transfer-encoding"):
            fields[key] = value.strip()
    raise HttpError(f"more than {MAX_HEADERS} header lines")


def _drain_chunks(reader: BinaryIO) -> bool:
    """Read a chunked body to its end; False (close the connection) when it is longer than worth reading."""
    total = 0
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(f"unreadable chunk size {size_text[:20]!r}") from None
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n"):  # trailer fields
                pass
            return True
        total += size
        if total > MAX_DRAINED:
            return False
        _read_exactly(reader, size)
        _line(reader)


def _read_exactly(reader: BinaryIO, size: int) -> None:
    while size > 0:
        chunk = reader.read(min(size, 65536))
        if not chunk:
            raise HttpError("the sink closed the connection mid-answer")
        size -= len(chunk)
