"""A local cache of verified bundles, keyed by content digest; nothing in it is trusted without re-verification.

Layout (the root and every folder in it are 0700, owned by the service user):

    <root>/<name>/sha256-<digest>/…   the files of one verified bundle (digest = the signed root digest)
    <root>/<name>/index.json          {"versions": {version: digest}, "refs": {ref: version}, "highest": version}
    <root>/.tmp/                      private folders for downloads in progress (same filesystem: keeping is a rename)
    <root>/.lock                      serialises index updates between worker processes

The index only says where to look. Every use copies the cached files into a fresh private folder,
hashing on the way, and runs the full verification (keyring, signature, every digest, name, version)
plus a check that the signed digest is the one the entry is named after.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from sealserve.bundle import files
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import check_name
from sealserve.errors import ConfigError, DigestMismatchError
from sealserve.store.base import is_version
from sealserve.trust.identity.policy import TrustPolicy
from sealserve.trust.verify import VerifiedBundle, stage, verify_staged

logger = logging.getLogger("sealserve.cache")

INDEX_FILE = "index.json"
DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CacheEntry:
    name: str
    version: str
    digest: str
    path: Path


class BundleCache:
    """Verified bundles on local disk, so a restart can serve while the store is unreachable."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        _private_folder(self.root)
        self._tmp = self.root / ".tmp"
        _private_folder(self._tmp)

    def workdir(self) -> Path:
        """A fresh private folder on the cache's filesystem (mkdtemp makes it 0700)."""
        return Path(tempfile.mkdtemp(prefix="fetch-", dir=self._tmp))

    def entry(self, name: str, version: str) -> CacheEntry | None:
        digest = self._index(name).get("versions", {}).get(version)
        if not isinstance(digest, str) or not DIGEST.match(digest):
            return None
        path = self._entry_dir(name, digest)
        return CacheEntry(name, version, digest, path) if path.is_dir() else None

    def lookup(self, name: str, ref: str) -> CacheEntry | None:
        """The entry a ref (a version, or an alias as last served) names, if it is cached."""
        version = ref if is_version(ref) else self._index(name).get("refs", {}).get(ref)
        return self.entry(name, version) if isinstance(version, str) else None

    def highest(self, name: str) -> Version | None:
        value = self._index(name).get("highest")
        try:
            return Version(value) if isinstance(value, str) else None
        except InvalidVersion:
            return None

    def restore(self, entry: CacheEntry, keyring: Keyring | TrustPolicy, limits: files.BundleLimits) -> VerifiedBundle:
        """Copy an entry into a private folder (hashing every byte once) and verify it fully."""
        workdir = self.workdir()
        try:
            digests = stage(entry.path, workdir, limits)
            verified = verify_staged(workdir, digests, keyring, name=entry.name, version=entry.version)
            if verified.digest != entry.digest:
                raise DigestMismatchError(f"cached {entry.name} {entry.version} is not the bundle its cache entry names")
            return verified
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def keep(self, verified: VerifiedBundle) -> None:
        """Add a verified bundle; its private folder is moved in when it lives in this cache, else copied."""
        name = check_name(verified.metadata.name)
        target = self._entry_dir(name, verified.digest)
        if target.exists():
            verified.discard()
            return
        _private_folder(target.parent)
        source = verified.path
        if source.parent != self._tmp:
            source = self.workdir()
            files.copy_tree(files.list_files(verified.path), source)
            verified.discard()
        try:
            os.rename(source, target)
        except OSError:
            shutil.rmtree(source, ignore_errors=True)

    def remember(self, name: str, ref: str, version: str, digest: str, highest: Version | None) -> None:
        """Record what a ref served and the highest version served; prune entries nothing refers to."""
        with self._locked():
            index = self._index(name)
            versions: dict[str, Any] = dict(index.get("versions", {}))
            refs: dict[str, Any] = dict(index.get("refs", {}))
            versions[version] = digest
            refs[ref] = version
            if highest is not None:
                index["highest"] = str(highest)
            wanted = {v for v in refs.values() if isinstance(v, str)} | {index.get("highest")}
            keep = {v: d for v, d in versions.items() if v in wanted}
            index["versions"], index["refs"] = keep, refs
            self._write_index(name, index)
            live = {f"sha256-{d}" for d in keep.values()}
            for child in (self.root / name).iterdir():
                if child.name.startswith("sha256-") and child.name not in live:
                    shutil.rmtree(child, ignore_errors=True)

    def drop(self, entry: CacheEntry) -> None:
        """Remove an entry that failed re-verification."""
        with self._locked():
            shutil.rmtree(entry.path, ignore_errors=True)
            index = self._index(entry.name)
            versions = {v: d for v, d in index.get("versions", {}).items() if d != entry.digest}
            index["versions"] = versions
            self._write_index(entry.name, index)

    def _entry_dir(self, name: str, digest: str) -> Path:
        if not DIGEST.match(digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / check_name(name) / f"sha256-{digest}"

    def _index(self, name: str) -> dict[str, Any]:
        path = self.root / check_name(name) / INDEX_FILE
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_index(self, name: str, index: dict[str, Any]) -> None:
        folder = self.root / name
        _private_folder(folder)
        temporary = folder / f".{INDEX_FILE}.{os.getpid()}"
        temporary.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, folder / INDEX_FILE)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        descriptor = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def _private_folder(path: Path) -> None:
    """Create `path` 0700, or accept an existing folder that is ours and not a link; tighten it to 0700."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot create cache folder {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"cache folder {path} is not a plain folder")
    if info.st_uid != os.getuid():
        raise ConfigError(f"cache folder {path} belongs to another user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
