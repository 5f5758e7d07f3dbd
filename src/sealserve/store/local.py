"""The embedded file:// store: <root>/<name>/<version>/… and <root>/<name>/_aliases/<alias>."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from packaging.version import Version

from sealserve.bundle import envelope, files
from sealserve.bundle.metadata import METADATA_FILE, NAME_PATTERN, check_name, check_version
from sealserve.errors import NotFoundError, StoreError, UnsafePathError, VersionExistsError
from sealserve.store.base import VersionInfo, check_alias, is_version, version_info
from sealserve.trust.verify import check_digests, read_identity, stage

ALIASES_DIR = "_aliases"
MAX_ALIAS_BYTES = 256


class LocalStore:
    """A folder of bundles; writes are atomic renames so readers never see half a version."""

    def __init__(self, root: Path, limits: files.BundleLimits | None = None) -> None:
        self.root = root
        self.url = root.as_uri()
        self.limits = limits or files.BundleLimits()

    def push(self, bundle: Path) -> VersionInfo:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(files.private_directory("sealserve-push-"))
        try:
            digests = inspect_bundle(bundle, staging, self.limits)
            name, version = read_identity(staging)
            target = self._version_dir(name, version)
            target.parent.mkdir(parents=True, exist_ok=True)
            incoming = target.parent / f".incoming-{version}-{os.getpid()}"
            shutil.move(staging, incoming)
            staging.mkdir()
            try:
                os.rename(incoming, target)
            except OSError:
                shutil.rmtree(incoming, ignore_errors=True)
                if not target.is_dir():
                    raise StoreError(f"cannot write {target}") from None
                existing = files.digest_files(files.list_files(target))
                if existing != digests:
                    raise VersionExistsError(f"{name} {version} already exists with different content") from None
            return self._info(name, version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def fetch(self, name: str, version: str, destination: Path) -> dict[str, str]:
        source = self._version_dir(name, version)
        if source.is_symlink():
            raise UnsafePathError(f"refused {name} {version}: its folder in {self.url} is a symbolic link")
        if not source.is_dir():
            raise NotFoundError(f"{name} {version} is not in {self.url}")
        return files.copy_tree(files.list_files(source, self.limits), destination)

    def resolve(self, name: str, ref: str) -> str:
        check_name(name)
        if is_version(ref):
            if self._version_dir(name, ref).is_dir():
                return ref
        elif NAME_PATTERN.match(ref):  # a ref is never a path: no '/', no leading '.'
            alias_file = self.root / name / ALIASES_DIR / ref
            if alias_file.is_symlink() or alias_file.exists():
                try:
                    return check_version(read_alias(alias_file, f"{name}: alias {ref!r}"))
                except ValueError:
                    raise StoreError(f"{name}: alias {ref!r} does not name a valid version") from None
        raise NotFoundError(f"{name}: no version or alias {ref!r} in {self.url}")

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))

    def versions(self, name: str) -> list[VersionInfo]:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            raise NotFoundError(f"no model {name!r} in {self.url}")
        names = [p.name for p in folder.iterdir() if p.is_dir() and is_version(p.name)]
        return [self._info(name, version) for version in sorted(names, key=Version)]

    def aliases(self, name: str) -> dict[str, str]:
        folder = self.root / check_name(name) / ALIASES_DIR
        if not folder.is_dir():
            return {}
        found = sorted(path for path in folder.iterdir() if NAME_PATTERN.match(path.name))
        return {path.name: read_alias(path, f"{name}: alias {path.name!r}") for path in found}

    def promote(self, name: str, version: str, alias: str) -> None:
        check_alias(alias)
        if not self._version_dir(name, version).is_dir():
            raise NotFoundError(f"{name} {version} is not in {self.url}; push it first")
        folder = self.root / name / ALIASES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{alias}.{os.getpid()}"
        temporary.write_text(version + "\n")
        os.replace(temporary, folder / alias)

    def _version_dir(self, name: str, version: str) -> Path:
        """The folder of a version; a ref that is not a version has none (stray folders never stand in for one)."""
        check_name(name)
        if not is_version(version):
            raise NotFoundError(f"{name}: {version!r} is not a version")
        return self.root / name / version

    def _info(self, name: str, version: str) -> VersionInfo:
        folder = self._version_dir(name, version)
        listed = files.list_files(folder)
        size = sum(path.stat().st_size for path in listed.values())
        return version_info(name, version, size, _read(listed.get(files.SIGNATURE_FILE)), _read(listed.get(METADATA_FILE)))


def inspect_bundle(bundle: Path, staging: Path, limits: files.BundleLimits | None = None) -> dict[str, str]:
    """Stage a bundle and check that it is self-consistent (signature parses, files match its manifest).

    This is not verification: no keyring is involved. It keeps broken bundles out of the store.
    """
    digests = stage(bundle, staging, limits)
    if files.SIGNATURE_FILE not in digests:
        raise StoreError(f"{bundle} has no {files.SIGNATURE_FILE}; pack and sign it first")
    parsed = envelope.parse((staging / files.SIGNATURE_FILE).read_bytes())
    check_digests(envelope.signed_digests(parsed.payload), {k: v for k, v in digests.items() if k != files.SIGNATURE_FILE})
    return digests


def read_alias(path: Path, what: str) -> str:
    """An alias file's content: a regular file of at most MAX_ALIAS_BYTES, never a link, FIFO or device."""
    with files.open_regular(path, path.name) as handle:
        data = handle.read(MAX_ALIAS_BYTES + 1)
    if len(data) > MAX_ALIAS_BYTES:
        raise StoreError(f"{what}: alias file is larger than {MAX_ALIAS_BYTES} bytes")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise StoreError(f"{what}: alias file is not ASCII text") from None


def _read(path: Path | None) -> bytes | None:
    try:
        return None if path is None else path.read_bytes()
    except OSError:
        return None
