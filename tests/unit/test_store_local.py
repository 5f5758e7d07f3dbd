"""The file:// store: immutable versions, aliases that never look like versions, refs that are never paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sealserve.bundle import envelope, files, keys
from sealserve.errors import BundleTooLargeError, DigestMismatchError, NotFoundError, StoreError, UnsafePathError, VersionExistsError
from sealserve.packing.build import sign_folder
from sealserve.store import LocalStore, open_store
from tests.support.tamper import flip_byte


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def with_version(bundle: Path, version: str, key: keys.SigningKey, out: Path) -> Path:
    """A copy of `bundle` re-signed as another version (what packing the same model again would give)."""
    copy = Path(shutil.copytree(bundle, out))
    metadata = json.loads((copy / "sealserve.json").read_text())
    metadata["version"] = version
    (copy / "sealserve.json").write_text(json.dumps(metadata))
    sign_folder(copy, key, subject=metadata["name"])
    return copy


def test_push_then_fetch_returns_the_same_bytes(store: LocalStore, packed_bundle: Path, tmp_path: Path) -> None:
    info = store.push(packed_bundle)
    assert (info.name, info.version, info.signer) == ("risk", "1.0.0", "test-signer")
    assert info.size == sum(path.stat().st_size for path in files.list_files(packed_bundle).values())
    destination = files.private_directory()
    try:
        digests = store.fetch("risk", "1.0.0", destination)
        assert digests == files.digest_files(files.list_files(packed_bundle))
        assert (destination / "model.skops").read_bytes() == (packed_bundle / "model.skops").read_bytes()
    finally:
        shutil.rmtree(destination)
    assert (tmp_path / "store" / "risk" / "1.0.0" / "model.sig").is_file()


def test_a_zip_bundle_is_stored_as_its_files(store: LocalStore, packed_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "risk.zip"
    files.write_zip(packed_bundle, archive)
    store.push(archive)
    assert sorted(files.list_files(tmp_path / "store" / "risk" / "1.0.0")) == sorted(files.list_files(packed_bundle))


def test_pushing_the_same_bytes_again_is_fine_but_different_bytes_are_refused(
    store: LocalStore, packed_bundle: Path, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    store.push(packed_bundle)
    assert store.push(packed_bundle).version == "1.0.0"
    resigned = Path(shutil.copytree(packed_bundle, tmp_path / "resigned"))
    (resigned / "reports" / "profile.html").write_text("<p>a different report</p>")
    sign_folder(resigned, signing_key, subject="risk")
    with pytest.raises(VersionExistsError, match=r"risk 1\.0\.0 already exists with different content"):
        store.push(resigned)
    stored = tmp_path / "store" / "risk" / "1.0.0" / "reports" / "profile.html"
    assert stored.read_bytes() == (packed_bundle / "reports" / "profile.html").read_bytes()
    assert [p.name for p in (tmp_path / "store" / "risk").iterdir() if p.name.startswith(".")] == []


def test_broken_or_unsigned_bundles_never_enter_the_store(store: LocalStore, bundle_copy: Path, tmp_path: Path) -> None:
    flip_byte(bundle_copy / "model.skops")
    with pytest.raises(DigestMismatchError, match=r"model\.skops"):
        store.push(bundle_copy)
    (bundle_copy / "model.sig").unlink()
    with pytest.raises(StoreError, match=r"has no model\.sig"):
        store.push(bundle_copy)
    assert store.models() == []


def test_push_applies_the_store_limits(bundle_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleTooLargeError, match="more than 2 files"):
        LocalStore(tmp_path / "store", files.BundleLimits(max_files=2)).push(bundle_copy)
    (bundle_copy / "link").symlink_to(bundle_copy / "model.skops")
    with pytest.raises(UnsafePathError):
        LocalStore(tmp_path / "store").push(bundle_copy)


def test_listing_versions_and_aliases(store: LocalStore, packed_bundle: Path, signing_key: keys.SigningKey, tmp_path: Path) -> None:
    store.push(packed_bundle)
    store.push(with_version(packed_bundle, "1.10.0", signing_key, tmp_path / "v110"))
    store.push(with_version(packed_bundle, "1.2.0", signing_key, tmp_path / "v12"))
    store.promote("risk", "1.2.0", "production")
    store.promote("risk", "1.10.0", "staging")
    assert store.models() == ["risk"]
    assert [info.version for info in store.versions("risk")] == ["1.0.0", "1.2.0", "1.10.0"]  # version order, not text order
    assert store.aliases("risk") == {"production": "1.2.0", "staging": "1.10.0"}
    assert store.resolve("risk", "production") == "1.2.0"
    assert store.resolve("risk", "1.0.0") == "1.0.0"


def test_promote_moves_an_alias_and_only_to_existing_versions(
    store: LocalStore, packed_bundle: Path, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    store.push(packed_bundle)
    store.promote("risk", "1.0.0", "production")
    store.push(with_version(packed_bundle, "2.0.0", signing_key, tmp_path / "v2"))
    store.promote("risk", "2.0.0", "production")
    assert store.resolve("risk", "production") == "2.0.0"
    with pytest.raises(NotFoundError, match=r"risk 3\.0\.0 is not in"):
        store.promote("risk", "3.0.0", "production")
    assert store.resolve("risk", "production") == "2.0.0"


@pytest.mark.parametrize("alias", ["1.0.0", "2", "1.0rc1", "v1.0"])
def test_aliases_that_look_like_versions_are_refused(store: LocalStore, packed_bundle: Path, alias: str) -> None:
    store.push(packed_bundle)
    with pytest.raises(StoreError, match="looks like a version"):
        store.promote("risk", "1.0.0", alias)


@pytest.mark.parametrize("alias", ["Production", "../production", "prod/uction", ".hidden", ""])
def test_aliases_that_are_not_plain_names_are_refused(store: LocalStore, packed_bundle: Path, alias: str) -> None:
    store.push(packed_bundle)
    with pytest.raises(StoreError, match="alias"):
        store.promote("risk", "1.0.0", alias)


def test_a_ref_is_never_read_as_a_path(store: LocalStore, packed_bundle: Path, tmp_path: Path) -> None:
    store.push(packed_bundle)
    store.promote("risk", "1.0.0", "production")  # the _aliases folder exists, so '../..' from it would resolve
    (tmp_path / "store" / "outside.txt").write_text("1.0.0\n")
    with pytest.raises(NotFoundError, match="no version or alias"):
        store.resolve("risk", "../../outside.txt")


def test_an_alias_file_that_does_not_hold_a_version_is_an_error(store: LocalStore, packed_bundle: Path, tmp_path: Path) -> None:
    store.push(packed_bundle)
    store.promote("risk", "1.0.0", "production")
    (tmp_path / "store" / "risk" / "_aliases" / "production").write_text("../../../etc\n")
    with pytest.raises(StoreError, match="alias 'production' does not name a valid version"):
        store.resolve("risk", "production")


def test_unknown_models_versions_and_refs_are_not_found(store: LocalStore, packed_bundle: Path) -> None:
    with pytest.raises(NotFoundError):
        store.versions("risk")
    store.push(packed_bundle)
    with pytest.raises(NotFoundError, match="no version or alias 'canary'"):
        store.resolve("risk", "canary")
    with pytest.raises(NotFoundError, match=r"risk 9\.9\.9 is not in"):
        store.fetch("risk", "9.9.9", Path("/nonexistent"))
    with pytest.raises(ValueError, match="must match"):
        store.resolve("../risk", "production")


def test_fetch_applies_the_store_limits(packed_bundle: Path, tmp_path: Path) -> None:
    LocalStore(tmp_path / "store").push(packed_bundle)
    with pytest.raises(BundleTooLargeError, match="larger than 100 bytes"):
        LocalStore(tmp_path / "store", files.BundleLimits(max_total_bytes=100)).fetch("risk", "1.0.0", tmp_path / "out")


def test_open_store_accepts_file_urls_and_plain_paths(tmp_path: Path) -> None:
    assert isinstance(open_store(f"file://{tmp_path}/store"), LocalStore)
    assert open_store(str(tmp_path / "store")).url == (tmp_path / "store").as_uri()
    with pytest.raises(StoreError, match="names a host"):
        open_store("file://fileserver/share")
    with pytest.raises(StoreError, match="unsupported store URL scheme 'ftp'"):
        open_store("ftp://example.com/models")


def test_the_listed_signer_comes_from_the_signature(store: LocalStore, packed_bundle: Path) -> None:
    store.push(packed_bundle)
    [info] = store.versions("risk")
    assert info.signer == envelope.parse((packed_bundle / "model.sig").read_bytes()).kid
