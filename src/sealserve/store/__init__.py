"""Versioned bundle stores behind one interface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from sealserve.bundle.files import BundleLimits
from sealserve.errors import StoreError
from sealserve.store.base import Credentials, ProgressStart, Store, StoreAccessError, StoreUnavailableError, VersionInfo
from sealserve.store.directory import SCHEME, DirectoryStore

if TYPE_CHECKING:
    from sealserve.store.local import LocalStore


def open_store(url: str, *, credentials: Credentials | None = None, limits: BundleLimits | None = None) -> Store:
    """A store for `file:///path` (or a plain path), `s3://bucket/prefix[?endpoint=…&region=…&ca_bundle=…]`,
    or `dir:///path`, a plain folder holding one bundle (store/directory.py)."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from sealserve.store.s3 import S3Store

        return S3Store(url, credentials=credentials, limits=limits)
    if credentials is not None:
        raise StoreError(f"{url!r} is not an s3:// store; credentials are only used with s3://")
    if parsed.scheme == SCHEME:
        return DirectoryStore.from_url(url, limits)
    if parsed.scheme in ("", "file"):
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file store URL {url!r} names a host; use file:///absolute/path")
        from sealserve.store.local import LocalStore

        return LocalStore(Path(unquote(parsed.path if parsed.scheme else url)).resolve(), limits)
    raise StoreError(f"unsupported store URL scheme {parsed.scheme!r} in {url!r}")


def __getattr__(name: str) -> Any:
    """LocalStore on first use: it stages through the trust path (numpy), which reading settings never needs."""
    if name == "LocalStore":
        from sealserve.store.local import LocalStore

        return LocalStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Credentials",
    "DirectoryStore",
    "LocalStore",
    "ProgressStart",
    "Store",
    "StoreAccessError",
    "StoreUnavailableError",
    "VersionInfo",
    "open_store",
]
