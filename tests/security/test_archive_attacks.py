"""Attacks on a bundle archive: escapes, links, duplicates, hidden data and decompression bombs, refused while staging.

Each archive is the trusted-signed live payload bundle (`evil_bundle`) zipped, plus the attack. Refusals happen before
the signature is read, and before any byte of a refused archive is written.
"""

from __future__ import annotations

import os
import stat
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sealserve.bundle import files
from sealserve.bundle.keyring import Keyring
from sealserve.errors import BundleFormatError, BundleTooLargeError, ExtraFileError, UnsafePathError
from sealserve.trust.verify import verify_bundle
from tests.security.conftest import Attempt

Entry = tuple[str | zipfile.ZipInfo, bytes]
MIB = 1 << 20


def link(name: str, target: str) -> Entry:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def stored(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_STORED
    return info


def archive_of(bundle: Path, out: Path, extra: list[Entry], *, skip: tuple[str, ...] = ()) -> Path:
    """The bundle's files as a deflated zip, minus `skip`, plus `extra` entries in order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some cases write on purpose
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            for name, path in sorted(files.list_files(bundle).items()):
                if name not in skip:
                    zipped.write(path, name)
            for info, data in extra:
                zipped.writestr(info, data)
    return out


def zeros(count: int, size: int) -> list[Entry]:
    return [(f"reports/blank-{index}.csv", bytes(size)) for index in range(count)]


CASES: list[tuple[str, Callable[[Path], list[Entry]], type[Exception], str]] = [
    ("slip-parent", lambda root: [("../escape.txt", b"x")], UnsafePathError, "'..'"),
    ("slip-nested", lambda root: [("reports/../../escape.txt", b"x")], UnsafePathError, "'..'"),
    ("slip-absolute", lambda root: [(str(root / "escape.txt"), b"x")], UnsafePathError, "absolute path"),
    ("slip-backslash", lambda root: [("..\\escape.txt", b"x")], UnsafePathError, "backslash"),
    ("dot-component", lambda root: [("./escape.txt", b"x")], UnsafePathError, "'.' component"),
    ("symlink-entry", lambda root: [link("reports/passwd", "/etc/passwd")], UnsafePathError, "symbolic link 'reports/passwd'"),
    ("symlink-out-of-bundle", lambda root: [link("reports/up", "../../escape.txt")], UnsafePathError, "symbolic link"),
    (
        "duplicate-entry",
        lambda root: [("model.joblib", b"second copy, other tools extract this one")],
        UnsafePathError,
        "duplicate archive entry 'model.joblib'",
    ),
    (
        "directory-entry-with-data",
        lambda root: [(stored("reports/"), b"unsigned bytes other tools unpack")],
        UnsafePathError,
        "directory entry 'reports/' carrying data",
    ),
    ("directory-entry-with-deflated-data", lambda root: [("hidden/", b"unsigned bytes" * 100)], UnsafePathError, "carrying data"),
    ("directory-entry-escape", lambda root: [(stored("../outside/"), b"")], UnsafePathError, "'..'"),
    ("bomb-one-large-entry", lambda root: zeros(1, 32 * MIB), BundleTooLargeError, "compression ratio above 200"),
    ("bomb-many-small-entries", lambda root: zeros(3, 15 * MIB), BundleTooLargeError, "expands to .* compression ratio above 200"),
    (
        "too-many-entries",
        lambda root: [(f"reports/{index}.txt", b"") for index in range(1001)],
        BundleTooLargeError,
        "more than 1000 files",
    ),
    ("file-and-folder-clash", lambda root: [("model.joblib/inner", b"x")], BundleFormatError, "cannot extract 'model.joblib/inner'"),
    ("extra-entry", lambda root: [("__MACOSX/._model.joblib", b"resource fork")], ExtraFileError, "__MACOSX/._model.joblib"),
]


@pytest.fixture
def clean_archive(evil_bundle: Path, tmp_path: Path) -> Path:
    return archive_of(evil_bundle, tmp_path / "clean.zip", [])


def test_control_the_zipped_payload_fires(clean_archive: Path, trusted_keyring: Keyring, attempt: Attempt, marker: Path) -> None:
    attempt(clean_archive, trusted_keyring)
    assert marker.exists()


def test_control_a_directory_entry_really_carries_its_data(evil_bundle: Path, tmp_path: Path) -> None:
    archive = archive_of(evil_bundle, tmp_path / "hidden.zip", [(stored("reports/"), b"unsigned bytes")])
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.read("reports/") == b"unsigned bytes"


def test_control_the_many_small_bomb_would_be_written_without_the_ratio_cap(evil_bundle: Path, tmp_path: Path) -> None:
    archive = archive_of(evil_bundle, tmp_path / "bomb.zip", zeros(3, 15 * MIB))
    assert archive.stat().st_size * 200 < 45 * MIB
    out = tmp_path / "unlimited"
    files.extract_zip(archive, out, files.BundleLimits(max_compression_ratio=10**9))
    assert sum(path.stat().st_size for path in out.rglob("*.csv")) == 45 * MIB


@pytest.mark.parametrize(("entries", "error", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_hostile_archives_are_refused_and_nothing_is_written(
    evil_bundle: Path,
    trusted_keyring: Keyring,
    attempt: Attempt,
    marker: Path,
    tmp_path: Path,
    entries: Callable[[Path], list[Entry]],
    error: type[Exception],
    message: str,
) -> None:
    archive = archive_of(evil_bundle, tmp_path / "hostile.zip", entries(tmp_path))
    with pytest.raises(error, match=message):
        attempt(archive, trusted_keyring)
    assert not marker.exists()
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize(
    "entries",
    [zeros(3, 15 * MIB), zeros(1, 32 * MIB), [(stored("reports/"), b"hidden")], [("../escape.txt", b"x")]],
    ids=["many-small-bomb", "large-bomb", "directory-with-data", "slip"],
)
def test_refused_archives_write_no_byte(evil_bundle: Path, tmp_path: Path, entries: list[Entry]) -> None:
    """The caps are checked on the declared sizes of every entry before the first one is extracted."""
    archive = archive_of(evil_bundle, tmp_path / "hostile.zip", entries)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BundleFormatError):
        files.extract_zip(archive, out)
    assert os.listdir(out) == []


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path, trusted_keyring: Keyring, marker: Path) -> None:
    fake = tmp_path / "bundle.zip"
    fake.write_bytes(b"\x80\x04 not an archive at all")
    with pytest.raises(BundleFormatError, match="not a readable zip archive"):
        verify_bundle(fake, trusted_keyring)
    assert not marker.exists()
