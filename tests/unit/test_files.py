"""Reading bundle folders and archives: zip slip, links, duplicates, size caps and zip bombs are refused."""

from __future__ import annotations

import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from sealserve.bundle import files
from sealserve.errors import BundleFormatError, BundleTooLargeError, UnsafePathError


def make_folder(root: Path, contents: dict[str, bytes]) -> Path:
    for name, data in contents.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def make_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests write on purpose
        with zipfile.ZipFile(path, "w", compression=compression) as zipped:
            for name, data in entries:
                zipped.writestr(name, data)
    return path


def symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("../escape.txt", "'..'"),
        ("reports/../../escape.txt", "'..'"),
        ("./model.skops", "'.'"),
        ("reports//double.txt", "'..' or '.'"),
        ("reports\\windows.txt", "backslash"),
        ("", "empty"),
        ("model\x00.skops", "NUL"),
    ],
)
def test_unsafe_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(UnsafePathError, match="refused") as raised:
        files.check_relative_name(name)
    assert reason in str(raised.value)


def test_plain_relative_names_are_accepted() -> None:
    assert files.check_relative_name("reports/roc.png") == "reports/roc.png"
    assert files.check_relative_name("model.skops") == "model.skops"


def test_folder_listing_names_every_regular_file_relative_to_the_root(tmp_path: Path) -> None:
    make_folder(tmp_path, {"model.skops": b"m", "reports/roc.png": b"png", "reports/deep/cm.png": b"cm"})
    listed = files.list_files(tmp_path)
    assert sorted(listed) == ["model.skops", "reports/deep/cm.png", "reports/roc.png"]
    assert files.digest_files(listed)["model.skops"] == "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"


def test_folder_with_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the bundle")
    bundle = make_folder(tmp_path / "bundle", {"model.skops": b"m"})
    (bundle / "sealserve.json").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"symbolic link 'sealserve.json'"):
        files.list_files(bundle)


def test_folder_with_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    outside = make_folder(tmp_path / "elsewhere", {"leak.txt": b"x"})
    bundle = make_folder(tmp_path / "bundle", {"model.skops": b"m"})
    (bundle / "reports").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link 'reports'"):
        files.list_files(bundle)


def test_folder_with_a_fifo_is_refused(tmp_path: Path) -> None:
    bundle = make_folder(tmp_path / "bundle", {"model.skops": b"m"})
    os.mkfifo(bundle / "pipe")
    with pytest.raises(UnsafePathError, match="special file 'pipe'"):
        files.list_files(bundle)


def test_folder_caps_file_count_and_total_size(tmp_path: Path) -> None:
    bundle = make_folder(tmp_path, {"a": b"1" * 60, "b": b"2" * 60, "c": b"3"})
    with pytest.raises(BundleTooLargeError, match="more than 2 files"):
        files.list_files(bundle, files.BundleLimits(max_files=2))
    with pytest.raises(BundleTooLargeError, match="larger than 100 bytes"):
        files.list_files(bundle, files.BundleLimits(max_total_bytes=100))


def test_copy_refuses_a_file_swapped_for_a_symlink_after_listing(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("server secret")
    bundle = make_folder(tmp_path / "bundle", {"model.skops": b"m", "sealserve.json": b"{}"})
    listed = files.list_files(bundle)
    (bundle / "sealserve.json").unlink()
    (bundle / "sealserve.json").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"sealserve.json"):
        files.copy_tree(listed, files.private_directory())


def test_private_directory_is_readable_by_its_owner_only() -> None:
    folder = files.private_directory()
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        folder.rmdir()


def test_zip_round_trip_gives_the_same_digests_as_the_folder(tmp_path: Path) -> None:
    bundle = make_folder(tmp_path / "bundle", {"model.skops": os.urandom(5000), "sealserve.json": b"{}", "reports/r.html": b"<p>"})
    archive = tmp_path / "bundle.zip"
    files.write_zip(bundle, archive)
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    assert files.extract_zip(archive, extracted) == files.digest_files(files.list_files(bundle))
    assert (extracted / "reports/r.html").read_bytes() == b"<p>"


def test_written_archives_are_reproducible(tmp_path: Path) -> None:
    bundle = make_folder(tmp_path / "bundle", {"model.skops": b"model", "sealserve.json": b"{}"})
    files.write_zip(bundle, tmp_path / "one.zip")
    files.write_zip(bundle, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("/abs/model.skops", "absolute path"),
        ("../model.skops", "'..'"),
        ("reports/../../model.skops", "'..'"),
    ],
)
def test_zip_slip_entries_are_refused_and_nothing_is_written_outside(tmp_path: Path, entry: str, message: str) -> None:
    archive = make_zip(tmp_path / "evil.zip", [("sealserve.json", b"{}"), (entry, b"payload")])
    destination = tmp_path / "deep" / "destination"
    destination.mkdir(parents=True)
    with pytest.raises(UnsafePathError, match=message):
        files.extract_zip(archive, destination)
    assert not (tmp_path / "deep" / "model.skops").exists()
    assert not (tmp_path / "model.skops").exists()
    assert list(destination.iterdir()) == []


def test_zip_symlink_entries_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "evil.zip", [(symlink_entry("model.skops", "/etc/passwd"), b"/etc/passwd")])
    with pytest.raises(UnsafePathError, match=r"symbolic link 'model.skops'"):
        files.extract_zip(archive, tmp_path / "out")


def test_zip_duplicate_entries_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "dup.zip", [("model.skops", b"signed bytes"), ("model.skops", b"other bytes")])
    with pytest.raises(UnsafePathError, match=r"duplicate archive entry 'model.skops'"):
        files.extract_zip(archive, tmp_path / "out")


def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", [("model.skops", bytes(32 << 20))])
    with pytest.raises(BundleTooLargeError, match="compression ratio above 200"):
        files.extract_zip(archive, tmp_path / "out")


def test_small_very_compressible_files_are_not_taken_for_bombs(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "report.zip", [("reports/blank.csv", bytes(4 << 20))])
    digests = files.extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out" / "reports" / "blank.csv").stat().st_size == 4 << 20
    assert set(digests) == {"reports/blank.csv"}


def test_zip_size_and_count_caps(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "big.zip", [("a", os.urandom(80)), ("b", os.urandom(80)), ("c", b"")], zipfile.ZIP_STORED)
    with pytest.raises(BundleTooLargeError, match="expands beyond 100 bytes"):
        files.extract_zip(archive, tmp_path / "one", files.BundleLimits(max_total_bytes=100))
    with pytest.raises(BundleTooLargeError, match="more than 2 files"):
        files.extract_zip(archive, tmp_path / "two", files.BundleLimits(max_files=2))


def test_a_file_and_a_folder_with_the_same_name_are_refused_cleanly(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "clash.zip", [("reports", b"file"), ("reports/roc.png", b"png")])
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(BundleFormatError, match=r"reports/roc.png"):
        files.extract_zip(archive, destination)


def test_corrupted_archive_data_is_a_format_error_naming_the_entry(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bundle.zip", [("sealserve.json", b"{}"), ("model.skops", os.urandom(4000))], zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zipped:
        info = zipped.getinfo("model.skops")
    data[info.header_offset + 30 + len("model.skops") + 100] ^= 0xFF  # inside the stored bytes: the CRC no longer matches
    archive.write_bytes(bytes(data))
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(BundleFormatError, match=r"cannot extract 'model.skops'"):
        files.extract_zip(archive, destination)


def test_a_file_that_is_not_a_zip_is_a_format_error(tmp_path: Path) -> None:
    fake = tmp_path / "bundle.zip"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(BundleFormatError, match=r"bundle.zip: not a readable zip archive"):
        files.extract_zip(fake, tmp_path)
