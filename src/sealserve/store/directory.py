"""A plain folder holding one bundle's files, such as the `/mnt/models` KServe's storage initializer fills.

It is a read-only store of exactly one version, addressed as `dir:///mnt/models`. The server fetches and
verifies it like any store's bundle, so nothing in the folder is trusted before the keyring has checked it.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from sealserve.bundle import files
from sealserve.bundle.metadata import METADATA_FILE, check_name
from sealserve.errors import NotFoundError, SealserveError, StoreError
from sealserve.store.base import VersionInfo, is_version, version_info

SCHEME = "dir"
MAX_METADATA_BYTES = 4 << 20


def directory_url(path: Path) -> str:
    return f"{SCHEME}://{path.resolve()}"


class DirectoryStore:
    """The bundle in `root` answers for its own name, under its own version and any alias."""

    def __init__(self, root: Path, limits: files.BundleLimits | None = None) -> None:
        self.root = root
        self.url = directory_url(root)
        self.limits = limits or files.BundleLimits()

    @classmethod
    def from_url(cls, url: str, limits: files.BundleLimits | None = None) -> DirectoryStore:
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise StoreError(f"directory URL {url!r} must be dir:///absolute/path")
        return cls(Path(unquote(parsed.path)), limits)

    def push(self, bundle: Path) -> VersionInfo:
        raise StoreError(f"{self.url} is a read-only directory source; push to a file:// or s3:// store")

    def promote(self, name: str, version: str, alias: str) -> None:
        raise StoreError(f"{self.url} is a read-only directory source; it has no aliases to move")

    def fetch(self, name: str, version: str, destination: Path) -> dict[str, str]:
        self.resolve(name, version)
        return files.copy_tree(files.list_files(self.root, self.limits), destination)

    def resolve(self, name: str, ref: str) -> str:
        """Any alias names the folder's version; a version names itself only if the folder holds it."""
        version = self._version_of(name)
        if is_version(ref) and ref != version:
            raise NotFoundError(f"{name}: {self.url} holds version {version}, not {ref}")
        return version

    def models(self) -> list[str]:
        return [self._claimed()[0]]

    def versions(self, name: str) -> list[VersionInfo]:
        version = self._version_of(name)
        listed = files.list_files(self.root, self.limits)
        size = sum(path.stat().st_size for path in listed.values())
        signature, metadata = (listed.get(rel) for rel in (files.SIGNATURE_FILE, METADATA_FILE))
        return [version_info(name, version, size, _read(signature), _read(metadata))]

    def aliases(self, name: str) -> dict[str, str]:
        self._version_of(name)
        return {}

    def _version_of(self, name: str) -> str:
        """The version the folder's metadata claims for `name`; verification later checks the signed identity matches."""
        claimed_name, claimed_version = self._claimed()
        if check_name(name) != claimed_name:
            raise NotFoundError(f"{self.url} holds a bundle named {claimed_name!r}, not {name!r}")
        return claimed_version

    def _claimed(self) -> tuple[str, str]:
        """Name and version as the unverified sealserve.json states them: only used to ask for the right identity."""
        path = self.root / METADATA_FILE
        if not path.exists():
            raise NotFoundError(f"no bundle in {self.url}: it has no {METADATA_FILE}")
        try:
            with files.open_regular(path, METADATA_FILE) as handle:
                document = json.loads(handle.read(MAX_METADATA_BYTES))
        except (OSError, ValueError, SealserveError) as exc:
            raise NotFoundError(f"no readable bundle in {self.url}: {exc}") from None
        name, version = (document.get(key) if isinstance(document, dict) else None for key in ("name", "version"))
        if not isinstance(name, str) or not isinstance(version, str) or not is_version(version):
            raise NotFoundError(f"no readable bundle in {self.url}: {METADATA_FILE} names no valid name and version")
        return name, version


def _read(path: Path | None) -> bytes | None:
    try:
        return None if path is None else path.read_bytes()
    except OSError:
        return None
