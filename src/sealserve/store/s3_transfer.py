"""Transfers that hash while they download: a non-seekable hashing sink and the transfer-manager settings."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from s3transfer.subscribers import BaseSubscriber

from sealserve.errors import BundleFormatError

MiB = 1 << 20


def transfer_config(*, chunk_mib: int = 8, concurrency: int = 8) -> TransferConfig:
    """Multipart above one chunk, concurrent ranged GETs, bounded memory for in-order hashing."""
    config = TransferConfig(
        multipart_threshold=chunk_mib * MiB,
        multipart_chunksize=chunk_mib * MiB,
        max_concurrency=concurrency,
        use_threads=True,
        preferred_transfer_client="classic",
    )
    config.max_in_memory_download_chunks = 2 * concurrency
    return config


class HashingSink:
    """A write-only, non-seekable target: s3transfer then delivers ranged parts in order, and every byte is hashed as written.

    The file is created exclusively inside the caller's private folder and is never read back.
    """

    def __init__(self, path: Path, expected: int) -> None:
        self.path = path
        self.expected = expected
        self.written = 0
        self._digest = hashlib.sha256()
        self._handle: Any = None
        self._lock = threading.Lock()

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:
        with self._lock:
            if self.written + len(data) > self.expected:
                raise BundleFormatError(f"{self.path.name}: the store sent more bytes than it listed")
            if self._handle is None:
                self._open()
            self._digest.update(data)
            self._handle.write(data)
            self.written += len(data)
            return len(data)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("xb")

    def finish(self) -> str:
        with self._lock:
            if self._handle is None:
                self._open()
            self._handle.close()
            if self.written != self.expected:
                raise BundleFormatError(f"{self.path.name}: got {self.written} bytes, the store listed {self.expected}")
            return self._digest.hexdigest()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None and not self._handle.closed:
                self._handle.close()


class TransferWatch(BaseSubscriber):
    """Gives s3transfer the listed size (no extra HEAD request) and reports progress."""

    def __init__(self, size: int, advance: Callable[[int], None] | None) -> None:
        self._size = size
        self._advance = advance

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        if self._advance is not None:
            self._advance(bytes_transferred)
