"""What deserializing a model file may allocate, bounded before anything is allocated.

A model file declares the arrays it holds (joblib's array headers, the .npy headers inside a skops file) and the
loaders allocate what the header says before reading the data. So a few bytes declaring shape (10**12,) would ask for
8 TB, and a skops file (a zip of its own, unchecked by the bundle's archive caps) could hold a compression bomb, or
reference one array file from thousands of nodes, each read in full. The bounds:

- joblib, uncompressed (what `pack` writes): each array must fit in the bytes left in the file after its header;
- joblib, compressed, and skops: everything the loader will read or allocate — declared file sizes, once per reference,
  and declared array sizes — is at most `max_compression_ratio` (200) times the model file's size (at least 16 MiB),
  and never more than the bundle's `max_total_bytes` (4 GiB); skops' schema.json at most 64 MiB.

Past a bound: `BundleTooLargeError`, naming the array or file.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sealserve.bundle.files import RATIO_CHECK_MIN_BYTES, BundleLimits
from sealserve.errors import BundleFormatError, BundleTooLargeError

MAX_SCHEMA_BYTES = 64 << 20
SCHEMA = "schema.json"


def expansion_budget(file_bytes: int, limits: BundleLimits | None = None) -> int:
    """The most a model file of `file_bytes` may expand to when loaded."""
    limits = limits or BundleLimits()
    return min(limits.max_total_bytes, max(RATIO_CHECK_MIN_BYTES, limits.max_compression_ratio * file_bytes))


def describe_shape(shape: tuple[Any, ...]) -> str:
    return str(shape) if len(shape) <= 8 else f"({', '.join(map(str, shape[:8]))}, … {len(shape)} dimensions)"


class ArrayBudget:
    """The arrays one joblib file may declare. `raw` is the file itself when the stream is not compressed: an array's
    bytes then follow its header in the file, so each must fit in what is left of it."""

    def __init__(self, path: Path, raw: IO[bytes] | None, limits: BundleLimits | None = None) -> None:
        self.name = path.name
        self.size = path.stat().st_size
        self.raw = raw
        self.budget = self.left = expansion_budget(self.size, limits)

    def take(self, shape: tuple[int, ...], itemsize: int) -> None:
        """Account for one array of `shape` before it is allocated; refuse it if it cannot be there."""
        declared = math.prod(shape) * itemsize
        if self.raw is not None:
            available = self.size - self.raw.tell()
            room = f"the rest of the file holds {available}"
        else:
            available = self.left
            room = f"the file may expand to {self.budget} bytes in all ({available} left)"
        if declared > available:
            raise BundleTooLargeError(f"{self.name}: an array of shape {describe_shape(shape)} needs {declared} bytes, but {room}")
        self.left -= declared


def check_skops_file(path: Path, limits: BundleLimits | None = None) -> None:
    """Before skops reads anything: what its schema makes it read, and the arrays in what it reads, fit the budget."""
    budget = expansion_budget(path.stat().st_size, limits)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            schema_info = members.get(SCHEMA)
            if schema_info is None:
                return  # not a skops file; skops says so
            if schema_info.file_size > MAX_SCHEMA_BYTES:
                raise BundleTooLargeError(f"{path.name}: its {SCHEMA} declares {schema_info.file_size} bytes (at most {MAX_SCHEMA_BYTES})")
            schema = json.loads(archive.read(SCHEMA))
            needed = schema_info.file_size
            for name, count in Counter(_referenced_files(schema)).items():
                info = members.get(name)
                if info is None:
                    continue  # skops refuses a missing file
                needed += count * (info.file_size + _declared_arrays(archive, info, budget, path.name))
                if needed > budget:
                    break
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError, TypeError):
        raise BundleFormatError(f"{path.name} is not a readable skops file") from None
    if needed > budget:
        raise BundleTooLargeError(
            f"{path.name}: loading it would read and allocate {needed} bytes (declared sizes, once per reference); "
            f"at most {budget} for a file of {path.stat().st_size} bytes"
        )


def _referenced_files(schema: Any) -> Iterator[str]:
    """Every `file` a skops schema makes it read: once per node (nodes nest in dicts and lists), except that a node
    repeating a saved object id (with the same file) is loaded once, however often the schema repeats it."""
    pending: list[Any] = [schema]
    seen: set[tuple[str, str]] = set()
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            reference, identity = item.get("file"), item.get("__id__")
            if isinstance(reference, str):
                key = (repr(identity), reference)
                if identity is None or key not in seen:
                    yield reference
                seen.add(key)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _declared_arrays(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, name: str) -> int:
    """The bytes the arrays in one member declare: a .npy's header, or each .npy in a .npz (scipy's sparse matrices)."""
    if info.filename.endswith(".npy"):
        with archive.open(info) as member:
            return _npy_bytes(member, info.file_size, f"{name}: {info.filename}")
    if info.filename.endswith(".npz") and info.file_size <= budget:
        with zipfile.ZipFile(io.BytesIO(archive.read(info))) as inner:
            total = 0
            for item in inner.infolist():
                total += item.file_size
                if item.filename.endswith(".npy"):
                    with inner.open(item) as member:
                        total += _npy_bytes(member, item.file_size, f"{name}: {info.filename}/{item.filename}")
            return total
    return 0


def _npy_bytes(member: IO[bytes], stored: int, where: str) -> int:
    """An .npy header's declared array size, which must fit in the member that holds it."""
    import numpy as np

    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"npy version {version}")
    except ValueError:
        raise BundleFormatError(f"{where} is not a readable .npy array") from None
    declared = math.prod(shape) * dtype.itemsize
    if not dtype.hasobject and declared > stored:
        raise BundleTooLargeError(f"{where}: an array of shape {describe_shape(shape)} needs {declared} bytes; the file holds {stored}")
    return declared
