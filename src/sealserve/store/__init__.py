"""Versioned bundle stores behind one interface."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from sealserve.errors import StoreError
from sealserve.store.base import Store, VersionInfo
from sealserve.store.local import LocalStore


def open_store(url: str) -> Store:
    """A store for `file:///path` (or a plain path)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file store URL {url!r} names a host; use file:///absolute/path")
        return LocalStore(Path(unquote(parsed.path if parsed.scheme else url)).resolve())
    raise StoreError(f"unsupported store URL scheme {parsed.scheme!r} in {url!r}")


__all__ = ["LocalStore", "Store", "VersionInfo", "open_store"]
