"""Walk, hash and unpack bundle folders without ever following a link or leaving the folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from sealserve.errors import BundleFormatError, BundleTooLargeError, UnsafePathError

SIGNATURE_FILE = "model.sig"
CHUNK_SIZE = 1 << 20
RATIO_CHECK_MIN_BYTES = 16 << 20
EMPTY_DEFLATE_BYTES = 2


@dataclass(frozen=True)
class BundleLimits:
    """Caps applied while reading a bundle; the defaults suit models up to a few GiB."""

    max_total_bytes: int = 4 << 30
    max_files: int = 1000
    max_compression_ratio: int = 200


def check_relative_name(name: str) -> str:
    """Return `name` if it is a plain relative POSIX path inside the bundle, else refuse it."""
    if not name or "\\" in name or "\x00" in name:
        raise UnsafePathError(f"refused path {name!r}: empty, backslash or NUL")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise UnsafePathError(f"refused absolute path {name!r}")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise UnsafePathError(f"refused path {name!r}: '..' or '.' component")
    return name


def list_files(root: Path, limits: BundleLimits | None = None) -> dict[str, Path]:
    """Map each regular file's relative POSIX name to its path; refuse links and special files."""
    limits = limits or BundleLimits()
    found: dict[str, Path] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for entry in sorted(dirnames + filenames):
            path = base / entry
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise UnsafePathError(f"refused symbolic link {relative!r}")
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePathError(f"refused special file {relative!r}")
            found[check_relative_name(relative)] = path
            total += info.st_size
            if len(found) > limits.max_files:
                raise BundleTooLargeError(f"bundle has more than {limits.max_files} files")
            if total > limits.max_total_bytes:
                raise BundleTooLargeError(f"bundle is larger than {limits.max_total_bytes} bytes")
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def digest_files(files: dict[str, Path]) -> dict[str, str]:
    """SHA-256 of every file, keyed by relative name."""
    return {name: sha256_file(path) for name, path in files.items()}


def private_directory(prefix: str = "sealserve-") -> Path:
    """A fresh folder only this user can read or write (mkdtemp creates it 0700)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def extract_zip(archive: Path, destination: Path, limits: BundleLimits | None = None) -> dict[str, str]:
    """Unpack a bundle archive, refusing links, escapes, duplicates and zip bombs; return SHA-256 per file."""
    limits = limits or BundleLimits()
    try:
        zipped = zipfile.ZipFile(archive)
        archive_bytes = archive.stat().st_size
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleFormatError(f"{archive.name}: not a readable zip archive ({exc})") from None
    with zipped:
        members = check_members(zipped.infolist(), archive_bytes, limits)
        digests = {}
        for member in members:
            try:
                with zipped.open(member) as source:
                    digests[member.filename] = copy_and_hash(source, destination / member.filename, limit=member.file_size)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
                raise BundleFormatError(f"{archive.name}: cannot extract {member.filename!r} ({exc})") from None
        return digests


def check_members(entries: list[zipfile.ZipInfo], archive_bytes: int, limits: BundleLimits) -> list[zipfile.ZipInfo]:
    """The file entries to extract, once every entry's name, kind and declared size passed, before a byte is written.

    Declared sizes bound what is written (extraction stops at them), so the caps hold for the sum of many small entries:
    beyond RATIO_CHECK_MIN_BYTES the whole archive may expand at most `max_compression_ratio` times its size on disk.
    """
    members = []
    for entry in entries:
        if entry.is_dir():
            check_relative_name(entry.filename.removesuffix("/"))
            if entry.file_size or entry.compress_size > EMPTY_DEFLATE_BYTES:
                raise UnsafePathError(f"refused directory entry {entry.filename!r} carrying data (the signature covers files only)")
        else:
            members.append(entry)
    if len(members) > limits.max_files:
        raise BundleTooLargeError(f"archive has more than {limits.max_files} files")
    seen: set[str] = set()
    total = 0
    for member in members:
        name = check_relative_name(member.filename)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise UnsafePathError(f"refused symbolic link {name!r} in archive")
        if name in seen:
            raise UnsafePathError(f"refused duplicate archive entry {name!r}")
        seen.add(name)
        total += member.file_size
        if total > limits.max_total_bytes:
            raise BundleTooLargeError(f"archive expands beyond {limits.max_total_bytes} bytes")
        if member.file_size > RATIO_CHECK_MIN_BYTES and member.file_size / max(member.compress_size, 1) > limits.max_compression_ratio:
            raise BundleTooLargeError(f"refused {name!r}: compression ratio above {limits.max_compression_ratio}")
    if total > RATIO_CHECK_MIN_BYTES and total / max(archive_bytes, 1) > limits.max_compression_ratio:
        raise BundleTooLargeError(
            f"archive of {archive_bytes} bytes expands to {total} bytes: compression ratio above {limits.max_compression_ratio}"
        )
    return members


def copy_and_hash(source: IO[bytes], target: Path, *, limit: int | None = None) -> str:
    """Copy a stream into a new file, hashing on the way so the bytes are read once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    with target.open("xb") as sink:
        while chunk := source.read(CHUNK_SIZE):
            written += len(chunk)
            if limit is not None and written > limit:
                raise BundleFormatError(f"{target.name}: larger than its declared size")
            digest.update(chunk)
            sink.write(chunk)
    return digest.hexdigest()


def copy_tree(files: dict[str, Path], destination: Path) -> dict[str, str]:
    """Copy listed files into `destination` (a fresh private folder); return SHA-256 per file."""
    digests = {}
    for name, path in files.items():
        with open_regular(path, name) as source:
            digests[name] = copy_and_hash(source, destination / name)
    return digests


def open_regular(path: Path, name: str) -> IO[bytes]:
    """Open a listed file without following a link or blocking on a FIFO swapped in after it was listed."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UnsafePathError(f"refused {name!r}: cannot open it as a regular file ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise UnsafePathError(f"refused special file {name!r}")
    return os.fdopen(descriptor, "rb")


def write_zip(source: Path, archive: Path) -> None:
    """Write a bundle folder as one archive with stable ordering and timestamps."""
    files = list_files(source)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            with files[name].open("rb") as handle, zipped.open(info, "w") as sink:
                shutil.copyfileobj(handle, sink, CHUNK_SIZE)
