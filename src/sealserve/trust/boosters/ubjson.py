"""A bounded, data-only reader of XGBoost's UBJSON model files (`.ubj`), so XGBoost's native parser never reads one.

It yields the document json.loads would give for the same model saved as JSON (objects, lists, str, int, float, bool,
None); the JSON checks then walk it. Every length is checked against the bytes left before anything is allocated.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from sealserve.trust.boosters.summary import Malformed, need

MAX_DEPTH = 64  # XGBoost nests four or five levels; a deep file is malformed, not a model
_NUMBERS = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}  # big-endian
_STRUCTS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}
_INTEGERS = frozenset({b"i", b"U", b"I", b"l", b"L"})


def read_ubjson(raw: bytes) -> Any:
    """The one value the bytes hold; trailing bytes, unknown markers and counts past the end are Malformed."""
    reader = _Reader(raw)
    value = reader.value(reader.marker(), 0)
    need(reader.at == len(raw), f"{len(raw) - reader.at} bytes follow the document")
    return value


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.at = 0

    def take(self, count: int) -> bytes:
        need(0 <= count <= len(self.raw) - self.at, f"a length of {count} runs past the end of the file (byte {self.at})")
        chunk = self.raw[self.at : self.at + count]
        self.at += count
        return chunk

    def marker(self) -> bytes:
        return self.take(1)

    def number(self, marker: bytes) -> int | float:
        layout = _STRUCTS[marker]
        value = struct.unpack(layout, self.take(struct.calcsize(layout)))[0]
        return int(value) if marker in _INTEGERS else float(value)

    def length(self) -> int:
        marker = self.marker()
        need(marker in _INTEGERS, f"a length has marker {marker!r}, not an integer (byte {self.at - 1})")
        count = int(self.number(marker))
        need(count >= 0, f"a negative length {count} (byte {self.at})")
        return count

    def text(self) -> str:
        data = self.take(self.length())
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(f"a string is not UTF-8 (byte {self.at})") from None

    def value(self, marker: bytes, depth: int) -> Any:
        if marker in _NUMBERS:
            return self.number(marker)
        if marker == b"S":
            return self.text()
        if marker in (b"T", b"F"):
            return marker == b"T"
        if marker == b"Z":
            return None
        if marker in (b"[", b"{"):
            need(depth < MAX_DEPTH, f"containers nest deeper than {MAX_DEPTH}")
            return self.array(depth + 1) if marker == b"[" else self.object(depth + 1)
        raise Malformed(f"unsupported marker {marker!r} at byte {self.at - 1}")

    def header(self) -> tuple[bytes | None, int | None]:
        """An optimized container's element type and count (`$t#n` or `#n`), or (None, None)."""
        kind: bytes | None = None
        if self.raw[self.at : self.at + 1] == b"$":
            self.at += 1
            kind = self.marker()
            need(kind in _NUMBERS or kind == b"S", f"unsupported element type {kind!r}")  # each element takes a byte or more
            need(self.raw[self.at : self.at + 1] == b"#", "a typed container has no count")
        if self.raw[self.at : self.at + 1] == b"#":
            self.at += 1
            return kind, self.length()
        return None, None

    def array(self, depth: int) -> list[Any]:
        kind, count = self.header()
        if count is None:
            items: list[Any] = []
            while (marker := self.marker()) != b"]":
                items.append(self.value(marker, depth))
            return items
        if kind in _NUMBERS:  # a typed numeric array: one bounded slice, decoded at once
            dtype = np.dtype(_NUMBERS[kind])
            values = np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype)
            return [float(v) for v in values.tolist()] if kind in (b"d", b"D") else [int(v) for v in values.tolist()]
        need(count <= len(self.raw) - self.at, f"an array of {count} runs past the end of the file")
        return [self.value(kind, depth) if kind is not None else self.value(self.marker(), depth) for _ in range(count)]

    def object(self, depth: int) -> dict[str, Any]:
        kind, count = self.header()
        need(count is None or count <= len(self.raw) - self.at, f"an object of {count} entries runs past the end of the file")
        document: dict[str, Any] = {}
        index = 0
        while True:
            if count is None:
                if self.raw[self.at : self.at + 1] == b"}":
                    self.at += 1
                    return document
            elif index == count:
                return document
            key = self.text()
            need(key not in document, f"key {key!r} appears twice in one object")
            document[key] = self.value(kind if kind is not None else self.marker(), depth)
            index += 1
