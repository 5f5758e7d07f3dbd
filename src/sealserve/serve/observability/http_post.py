"""A keep-alive, pipelining HTTP/1.1 POST on the standard library's socket and ssl, for the event sender.

The sender shares the interpreter (and on small machines the cores) with the request path, so its CPU matters:
http.client spent about 240 µs of CPU per POST on a local sink (two sends per request, an email parser for the
answer's headers). Here a batch of events is one send, headers shared by many events are encoded once, and of
each answer only its status and the few headers that frame its body are read.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

MAX_LINE = 8192
MAX_HEADERS = 100
MAX_DRAINED = 1 << 20  # a longer answer body closes the connection instead of being read
MAX_BLOCKS = 64
YIELD_EVERY = 16  # answers read between two hand-overs of the interpreter (about 150 µs of work)


class HttpError(OSError):
    """The sink's answer could not be read as HTTP/1.1."""


Headers = Mapping[str, str]


@dataclass(frozen=True)
class Post:
    """One request: header blocks many requests share (each encoded once, then reused by identity), its own headers,
    its body."""

    shared: tuple[Headers, ...]
    own: Headers
    body: bytes


class HttpPost:
    """POSTs to one URL over one kept connection, reopened when the sink or a failure closes it. A batch is pipelined:
    every request in one send, the answers read in order (HTTP/1.1), unless the sink has shown it drops pipelined
    requests by closing the connection with some of them unanswered."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.tls else 80)
        self.context = (context or ssl.create_default_context()) if self.tls else None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._start = f"POST {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n".encode("ascii")
        self.pipelining = True
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None
        self._blocks: dict[int, tuple[Headers, bytes]] = {}

    def post(self, headers: Headers, body: bytes, timeout: float) -> int:
        """One request's status; OSError when the sink cannot be reached or read within `timeout` seconds."""
        statuses, error = self.post_all([Post((), headers, body)], timeout)
        if error is not None:
            raise error
        return statuses[0]

    def post_all(self, posts: Sequence[Post], timeout: float) -> tuple[list[int], OSError | None]:
        """The statuses of the answers read, in order, and the failure that stopped the rest (None once all are
        answered). Requests a sink left unanswered when it closed the connection after answering others are sent again
        on a new one, one at a time from then on; so, once, is a batch whose kept connection it had closed while idle."""
        for post in posts:
            self._check(post.own)
        deadline = time.monotonic() + timeout
        statuses: list[int] = []
        stale_retried = False
        while len(statuses) < len(posts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return statuses, TimeoutError("the sink did not answer in time")
            reused, before = self._sock is not None, len(statuses)
            try:
                self._exchange(posts[before:] if self.pipelining else posts[before : before + 1], remaining, statuses)
            except OSError as exc:
                self.close()
                closed = isinstance(exc, ConnectionError | HttpError)  # the sink closed or reset it, or answered nonsense
                if closed and len(statuses) > before:  # mid-batch: the rest again, one at a time from now on
                    self.pipelining = False
                    continue
                if closed and reused and not stale_retried:  # a kept connection it had closed while idle
                    stale_retried = True
                    continue
                return statuses, exc
        return statuses, None

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

    def _exchange(self, posts: Sequence[Post], timeout: float, statuses: list[int]) -> None:
        sock, reader = self._connect(timeout)
        sock.sendall(b"".join(self._request(post) for post in posts))
        for number in range(len(posts)):
            status, keep = self._answer(reader)
            statuses.append(status)
            if number % YIELD_EVERY == YIELD_EVERY - 1:
                time.sleep(0)  # hand the interpreter to the request path: a long batch never holds the GIL for long
            if not keep:
                self.close()
                if number + 1 < len(posts):
                    self.pipelining = False  # it closed with requests in flight: one at a time from now on
                return

    def _request(self, post: Post) -> bytes:
        return b"".join(
            [
                self._start,
                *(self._block(headers) for headers in post.shared),
                _encode(post.own),
                b"Content-Length: %d\r\n\r\n" % len(post.body),
                post.body,
            ]
        )

    def _block(self, headers: Headers) -> bytes:
        cached = self._blocks.get(id(headers))
        if cached is not None and cached[0] is headers:
            return cached[1]
        self._check(headers)
        if len(self._blocks) >= MAX_BLOCKS:
            self._blocks.clear()
        encoded = _encode(headers)
        self._blocks[id(headers)] = (headers, encoded)  # the mapping is kept, so its id cannot be reused meanwhile
        return encoded

    @staticmethod
    def _check(headers: Headers) -> None:
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")

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


def _encode(headers: Headers) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


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
