"""One model's event sink: its URL and credentials (a bearer token read from a file, TLS verified against a CA file),
and how hard to try: retries with exponential backoff and jitter, all within the event's time budget."""

from __future__ import annotations

import logging
import math
import random
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from sealserve.errors import ConfigError
from sealserve.serve.model_options import Events
from sealserve.serve.observability.cloud_events import Message
from sealserve.serve.observability.http_post import HttpPost, Post

logger = logging.getLogger("sealserve.events")
BACKOFF = 0.1  # seconds before the first retry, doubling after each, scaled by a random factor in [0.5, 1)
MAX_BACKOFF = 2.0
RETRIED = frozenset({408, 425, 429})  # and every 5xx; any other answer will not change by asking again
REPORT_EVERY = 60.0  # seconds between warnings about one sink


class BearerToken:
    """A token from a file (a mounted Secret), re-read when the file changes; a file that goes missing keeps the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._header = ""
        self._headers: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        """The Authorization header, the same mapping until the token changes (so it is encoded once)."""
        value = self.header()
        if self._headers.get("Authorization") != value:
            self._headers = {"Authorization": value}
        return self._headers

    def header(self) -> str:
        """The Authorization value; ConfigError when there has never been a readable, non-empty token."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if stamp != self._stamp:
                token = self.path.read_text().strip()
                if not token:
                    raise ConfigError(f"events.token_file {self.path} is empty")
                self._stamp, self._header = stamp, f"Bearer {token}"
        except (OSError, UnicodeDecodeError, ConfigError) as exc:
            if not self._header:
                raise ConfigError(f"events.token_file {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        return self._header

    def __repr__(self) -> str:
        return f"BearerToken({str(self.path)!r})"


class EventSink:
    """Delivers one event at a time; a sink that keeps failing is reported at most once a minute. Its files are read
    when first needed (`check` reads them at start-up), so building an app never needs the sink's credentials."""

    def __init__(self, model: str, settings: Events, sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.model, self.settings, self.retries, self._sleep = model, settings, settings.retries, sleep
        self._random = rng or random.Random()  # noqa: S311 (jitter, not security)
        self.token = BearerToken(settings.token_file) if settings.token_file is not None else None
        self._http: HttpPost | None = None
        parts = urlsplit(settings.url)
        self.shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"  # no credentials, no query
        self._given_up = 0
        self._report_at = 0.0
        self._down = False
        self.stop_at = math.inf  # set at shutdown: no event is tried past it

    def check(self) -> None:
        """ConfigError unless the token and CA files are readable."""
        self.connection()
        if self.token is not None:
            self.token.header()

    def connection(self) -> HttpPost:
        if self._http is None:
            self._http = HttpPost(self.settings.url, tls_context(self.settings.ca_file))
        return self._http

    def deliver(self, message: Message, deadline: float) -> str | None:
        """None once the sink accepted the event (2xx); else why it was given up: `failed` or `timeout`."""
        return self.deliver_all([message], deadline)[0]

    def deliver_all(self, messages: Sequence[Message], deadline: float) -> list[str | None]:
        """Each event's outcome: None once the sink accepted it (2xx), else why it was given up, `failed` (refused,
        or unreachable after every retry) or `timeout` (out of budget). The events still pending are retried together."""
        outcomes: list[str | None] = [None] * len(messages)
        pending, problem = list(range(len(messages))), "no attempt"
        for attempt in range(self.retries + 1):
            deadline = min(deadline, self.stop_at)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                http = self.connection()
                shared = (self.token.headers(),) if self.token is not None else ()
                posts = [Post((messages[index].shared, *shared), messages[index].own, messages[index].body) for index in pending]
                statuses, error = http.post_all(posts, remaining)
            except (ConfigError, ValueError) as exc:  # an unreadable token or CA file, a header no request may carry
                return self._give_up(outcomes, pending, "failed", str(exc))
            retry = pending[len(statuses) :]
            for index, status in zip(pending, statuses, strict=False):
                if status < 200 or status >= 300:
                    problem = f"it answered {status}"
                    if status < 500 and status not in RETRIED:
                        outcomes[index] = "failed"
                    else:
                        retry.append(index)
            if error is not None:
                problem = f"{type(error).__name__}: {error}"
            if any(200 <= status < 300 for status in statuses):
                self._delivered()
            refused = [index for index in pending if outcomes[index] == "failed"]
            if refused:
                self._give_up(outcomes, refused, "failed", problem)
            pending = sorted(retry)
            if not pending or attempt == self.retries:
                break
            delay = min(BACKOFF * 2**attempt, MAX_BACKOFF) * (0.5 + self._random.random() / 2)
            if time.monotonic() + delay >= deadline:
                return self._give_up(outcomes, pending, "timeout", problem)
            self._sleep(delay)
        if pending:
            self._give_up(outcomes, pending, "timeout" if time.monotonic() >= deadline else "failed", problem)
        return outcomes

    def abort(self) -> None:
        """At shutdown, from another thread: end the POST in flight."""
        if self._http is not None:
            self._http.abort()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _give_up(self, outcomes: list[str | None], indexes: Sequence[int], reason: str, problem: str) -> list[str | None]:
        for index in indexes:
            outcomes[index] = reason
        self._given_up += len(indexes)
        self._down = True
        now = time.monotonic()
        if now >= self._report_at:
            logger.warning(
                "inference events of %s: %d not delivered to %s since the last report (the last: %s, %s)",
                self.model,
                self._given_up,
                self.shown,
                reason,
                problem,
            )
            self._given_up, self._report_at = 0, now + REPORT_EVERY
        return outcomes

    def _delivered(self) -> None:
        if self._down:
            self._down = False
            logger.info("inference events of %s: %s accepts events again", self.model, self.shown)


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Verification against the CA file, when one is given (else the system's trust for https)."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"events.ca_file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from None
