"""Public keys for asymmetric JWTs from a JWKS file (re-read when it changes) or an identity provider's URL (cached)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import jwt

from sealserve.errors import ConfigError

logger = logging.getLogger("sealserve.auth")
FILE_CHECK_SECONDS = 1.0  # a rotated JWKS file is seen within this long
UNKNOWN_KID_REFETCH_SECONDS = 30.0  # an unknown kid refetches the URL at most this often (a flood of made-up kids costs nothing)
MAX_JWKS_BYTES = 1 << 20
FETCH_TIMEOUT = 5.0
ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class KeySet:
    """Keys by kid. Symmetric (`oct`) keys in a JWKS are ignored: a public key set must never verify HMAC tokens."""

    def __init__(self, file: Path | None, url: str | None, cache_seconds: float) -> None:
        self.file, self.url, self.cache_seconds = file, url, cache_seconds
        self.generation = 0
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._entries: list[dict[str, Any]] = []
        self._stamp: tuple[int, int] | None = None
        self._checked = self._fetched = self._refetched = float("-inf")
        self._lock = threading.Lock()
        self._refresh(force=True)
        if not self._keys:
            raise ConfigError(f"the JWKS at {file or url} holds no RSA, EC or OKP public key")

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for `kid` (or the only key, for a token without a kid); an unknown kid triggers one refresh."""
        self._refresh(force=False)
        key = self._lookup(kid)
        if key is None and self.url is not None and time.monotonic() - self._refetched >= UNKNOWN_KID_REFETCH_SECONDS:
            self._refetched = time.monotonic()
            self._refresh(force=True)
            key = self._lookup(kid)
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        keys = self._keys
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return keys.get(kid)

    def _refresh(self, force: bool) -> None:
        now = time.monotonic()
        if self.file is not None:
            if not force and now - self._checked < FILE_CHECK_SECONDS:
                return
            with self._lock:
                self._checked = now
                try:
                    status = self.file.stat()
                except OSError as exc:
                    self._failed(f"cannot read {self.file}: {exc.strerror}", force)
                    return
                stamp = (status.st_mtime_ns, status.st_size)
                if stamp != self._stamp:
                    self._load(lambda: self.file.read_bytes() if self.file is not None else b"", str(self.file), force)
                    self._stamp = stamp
            return
        if not force and now - self._fetched < self.cache_seconds:
            return
        with self._lock:
            if not force and time.monotonic() - self._fetched < self.cache_seconds:
                return
            self._fetched = time.monotonic()
            self._load(self._download, str(self.url), force)

    def _download(self) -> bytes:
        assert self.url is not None
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) only (config pattern)
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
            data: bytes = response.read(MAX_JWKS_BYTES + 1)
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        return data

    def _load(self, read: Any, where: str, first: bool) -> None:
        """Replace the keys; a broken or unreachable JWKS keeps the last good keys (and fails start-up if there are none)."""
        try:
            document = json.loads(read())
            entries = [
                entry
                for entry in document["keys"]
                if isinstance(entry, dict) and entry.get("kty") in ASYMMETRIC_KEY_TYPES and entry.get("use", "sig") == "sig"
            ]
            keys = {key.key_id: key for key in map(jwt.PyJWK, entries)}
        except (OSError, ValueError, KeyError, TypeError, jwt.PyJWKError) as exc:
            self._failed(f"the JWKS at {where} could not be used ({type(exc).__name__}: {str(exc)[:200]})", first and not self._keys)
            return
        if entries != self._entries:
            self._keys, self._entries = keys, entries
            self.generation += 1
            logger.info("JWKS loaded from %s: %d key(s) (%s)", where, len(keys), ", ".join(str(kid) for kid in keys))

    def _failed(self, message: str, fatal: bool) -> None:
        if fatal and not self._keys:
            raise ConfigError(message)
        logger.warning("%s; keeping the %d key(s) already loaded", message, len(self._keys))
