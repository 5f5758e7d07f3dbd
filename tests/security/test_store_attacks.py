"""Attacks through the file store: stray folders, alias files that are huge, links or FIFOs, refs that are paths,
linked or copied version folders, and aliases moved back to an older version (also across a restart).

The store holds the live payload bundle as risk 1.0.0 behind the alias `production`; `serve_ref` does what the server
does (resolve, fetch, verify, load with pickle trusted), so a payload that got through would write the marker.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from sealserve.bundle import files
from sealserve.bundle.keyring import Keyring
from sealserve.errors import IdentityMismatchError, NotFoundError, RollbackError, StoreError, UnsafePathError
from sealserve.store import LocalStore
from sealserve.store.cache import BundleCache
from sealserve.trust.rollback import check_rollback
from sealserve.trust.verify import verify_staged
from tests.security.conftest import TRUSTING_OPEN

NAME = "risk"


@pytest.fixture
def store(evil_bundle: Path, tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    store.push(evil_bundle)
    store.promote(NAME, "1.0.0", "production")
    return store


def serve_ref(store: LocalStore, keyring: Keyring, ref: str) -> None:
    version = store.resolve(NAME, ref)
    workdir = files.private_directory("security-store-")
    try:
        verified = verify_staged(workdir, store.fetch(NAME, version, workdir), keyring, name=NAME, version=version)
        verified.load(allow_pickle=True, trusted_types=TRUSTING_OPEN)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def model_folder(store: LocalStore) -> Path:
    return store.root / NAME


def alias_file(store: LocalStore) -> Path:
    return model_folder(store) / "_aliases" / "production"


def replace_alias(store: LocalStore, make: Callable[[Path], None]) -> None:
    alias_file(store).unlink()
    make(alias_file(store))


def outside_file(store: LocalStore) -> Path:
    path = store.root.parent / "outside-version"
    path.write_text("1.0.0\n")
    return path


def relink(path: Path, moved: Path) -> None:
    """Move `path` away and leave a symbolic link to it in its place."""
    path.rename(moved)
    path.symlink_to(moved)


def second_version(store: LocalStore) -> None:
    shutil.copytree(model_folder(store) / "1.0.0", model_folder(store) / "2.0.0")
    store.promote(NAME, "2.0.0", "production")


CASES: list[tuple[str, Callable[[LocalStore], object], str, type[Exception], str]] = [
    (
        "oversized-alias",
        lambda s: alias_file(s).write_bytes(b"1.0.0" + b" " * (1 << 20)),
        "production",
        StoreError,
        "alias file is larger than 256 bytes",
    ),
    (
        "alias-links-to-dev-zero",
        lambda s: replace_alias(s, lambda p: p.symlink_to("/dev/zero")),
        "production",
        UnsafePathError,
        "cannot open it as a regular file",
    ),
    (
        "alias-links-outside-the-store",
        lambda s: replace_alias(s, lambda p: p.symlink_to(outside_file(s))),
        "production",
        UnsafePathError,
        "cannot open it as a regular file",
    ),
    ("alias-is-a-fifo", lambda s: replace_alias(s, lambda p: os.mkfifo(p)), "production", UnsafePathError, "refused special file"),
    ("alias-names-a-path", lambda s: alias_file(s).write_text("../../../etc\n"), "production", StoreError, "does not name a valid version"),
    ("alias-binary", lambda s: alias_file(s).write_bytes(b"\xff\xfe1.0.0"), "production", StoreError, "not ASCII text"),
    ("ref-is-a-path", lambda s: None, "../../outside-version", NotFoundError, "no version or alias"),
    (
        "ref-is-the-old-sentinel",
        lambda s: (model_folder(s) / ".not-a-version").mkdir(),
        ".not-a-version",
        NotFoundError,
        "no version or alias",
    ),
    (
        "version-folder-is-a-link",
        lambda s: relink(model_folder(s) / "1.0.0", model_folder(s) / "real"),
        "production",
        UnsafePathError,
        "is a symbolic link",
    ),
    (
        "file-in-version-is-a-link",
        lambda s: relink(model_folder(s) / "1.0.0" / "reports" / "profile.html", s.root.parent / "moved.html"),
        "production",
        UnsafePathError,
        "symbolic link 'reports/profile.html'",
    ),
    ("version-copied-to-a-new-number", second_version, "production", IdentityMismatchError, "version '1.0.0', but '2.0.0'"),
]


def test_control_the_stored_payload_fires(store: LocalStore, trusted_keyring: Keyring, marker: Path) -> None:
    serve_ref(store, trusted_keyring, "production")
    assert marker.exists()


@pytest.mark.parametrize(("tamper", "ref", "error", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_store_tricks_are_refused(
    store: LocalStore,
    trusted_keyring: Keyring,
    marker: Path,
    tamper: Callable[[LocalStore], object],
    ref: str,
    error: type[Exception],
    message: str,
) -> None:
    tamper(store)
    with pytest.raises(error, match=message):
        serve_ref(store, trusted_keyring, ref)
    assert not marker.exists()


@pytest.mark.parametrize("folder", [".not-a-version", "production", "latest", "_tmp", ".incoming-1.0.0-1", "1.0.0.evil!"])
def test_stray_folders_never_stand_in_for_a_version_or_an_alias(store: LocalStore, evil_bundle: Path, folder: str) -> None:
    """A folder that is not a version (once: `.not-a-version` answered every alias) is ignored by every lookup."""
    shutil.copytree(evil_bundle, model_folder(store) / folder)
    assert store.resolve(NAME, "production") == "1.0.0"
    assert [info.version for info in store.versions(NAME)] == ["1.0.0"]
    assert store.aliases(NAME) == {"production": "1.0.0"}
    with pytest.raises(NotFoundError):
        store.resolve(NAME, "canary")
    with pytest.raises(NotFoundError):
        store.fetch(NAME, folder, store.root.parent / "out")


def test_an_alias_moved_back_is_a_rollback(store: LocalStore) -> None:
    second_version(store)
    store.promote(NAME, "1.0.0", "production")
    with pytest.raises(RollbackError, match=r"alias 'production' points at 1\.0\.0, older than 2\.0\.0"):
        check_rollback(NAME, "production", store.resolve(NAME, "production"), {NAME: Version("2.0.0")})
    check_rollback(NAME, "1.0.0", "1.0.0", {NAME: Version("2.0.0")})  # control: pinning the version is allowed


def test_a_rollback_is_refused_across_a_restart(store: LocalStore, tmp_path: Path) -> None:
    BundleCache(tmp_path / "cache").remember(NAME, "production", "2.0.0", "0" * 64, Version("2.0.0"))
    restarted = BundleCache(tmp_path / "cache").highest(NAME)  # a new process reads what the last one served
    assert restarted == Version("2.0.0")
    with pytest.raises(RollbackError, match=r"older than 2\.0\.0 already served"):
        check_rollback(NAME, "production", store.resolve(NAME, "production"), {NAME: restarted})
