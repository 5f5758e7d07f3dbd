"""The store interface: immutable versions of named bundles, plus movable aliases."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from packaging.version import InvalidVersion, Version

from sealserve.bundle import envelope
from sealserve.bundle.metadata import check_name, check_version
from sealserve.errors import SealserveError, StoreError
from sealserve.trust.identity.signer import certificate_names


class StoreUnavailableError(StoreError):
    """The store cannot be reached or answers with a server-side error; the same call may work later."""


class StoreAccessError(StoreError):
    """The store refused the credentials or the request (wrong key, wrong signature, no permission)."""


@dataclass(frozen=True)
class Credentials:
    """Explicit store credentials (from the service config); otherwise a store uses its platform's default chain."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


ProgressStart = Callable[[str, int], Callable[[int], None]]
"""`start(description, total_bytes)` returns `advance(bytes)`; stores call it around long transfers."""


@dataclass(frozen=True)
class VersionInfo:
    """One stored version; `signer` is read from model.sig and is informational until verified."""

    name: str
    version: str
    size: int
    signer: str
    created: str


class Store(Protocol):
    """What every store (file://, s3://) offers; verification is never the store's job."""

    url: str

    def push(self, bundle: Path) -> VersionInfo:
        """Upload a bundle folder or .zip; refuse to change an existing version."""
        ...

    def fetch(self, name: str, version: str, destination: Path) -> dict[str, str]:
        """Copy one version's files into `destination`, returning each file's SHA-256 computed on the way."""
        ...

    def resolve(self, name: str, ref: str) -> str:
        """The version a ref (a version or an alias) names right now."""
        ...

    def models(self) -> list[str]: ...

    def versions(self, name: str) -> list[VersionInfo]: ...

    def aliases(self, name: str) -> dict[str, str]: ...

    def promote(self, name: str, version: str, alias: str) -> None:
        """Point `alias` at an existing version."""
        ...


def check_alias(alias: str) -> str:
    """Aliases look nothing like versions, so a ref is never ambiguous."""
    try:
        check_name(alias)
    except ValueError as exc:
        raise StoreError(str(exc).replace("model name", "alias")) from None
    try:
        Version(alias)
    except InvalidVersion:
        return alias
    raise StoreError(f"alias {alias!r} looks like a version; use a word such as production or staging")


def is_version(value: str) -> bool:
    """Whether a folder or ref names a version (stray folders and aliases do not)."""
    try:
        check_version(value)
    except ValueError:
        return False
    return True


def version_info(name: str, version: str, size: int, signature: bytes | None, metadata: bytes | None) -> VersionInfo:
    """A listing row from a version's model.sig and sealserve.json bytes; unreadable parts show as '?'."""
    signer = "?"
    if signature is not None:
        try:
            parsed = envelope.parse(signature)
            signer = parsed.kid or parsed.hint[:16]
            if parsed.certificates:
                sans, subjects = certificate_names(x509.load_der_x509_certificate(parsed.certificates[0]))
                signer = f"{parsed.method}:{(*sans, *subjects, '?')[0]}"
        except (SealserveError, ValueError):
            pass
    created = "?"
    if metadata is not None:
        with contextlib.suppress(ValueError, AttributeError):
            created = str(json.loads(metadata).get("created", ""))
    return VersionInfo(name, version, size, signer, created)
