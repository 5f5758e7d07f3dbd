"""What a served model keeps for its explanations from the verified bundle folder, which is discarded after loading:
the background sample, and when the compiled form serves, the reference model's verified files (loaded on demand)."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sealserve.bundle import files
from sealserve.bundle.metadata import BundleMetadata
from sealserve.errors import BundleFormatError
from sealserve.trust.load import load_model_file


@dataclass
class ExplanationSource:
    """Read at load time from the verified folder; the reference model is deserialized, through the same audited loader
    as at start, on the first explanation that needs it (`reference`)."""

    metadata: BundleMetadata
    trusted_types: tuple[str, ...] = ()
    reference_files: dict[str, bytes] = field(default_factory=dict, repr=False)
    background_bytes: bytes | None = field(default=None, repr=False)
    loaded: Any = None
    load_seconds: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def read(cls, folder: Path, metadata: BundleMetadata, trusted_types: tuple[str, ...], *, keep_reference: bool) -> ExplanationSource:
        names = [metadata.model_file] + ([metadata.booster_step.file] if metadata.booster_step is not None else [])
        reference = {name: (folder / name).read_bytes() for name in names} if keep_reference else {}
        record = metadata.explanation
        background = (folder / record.background).read_bytes() if record is not None and record.background else None
        return cls(metadata, trusted_types, reference, background)

    @property
    def kept_bytes(self) -> int:
        """Memory this costs before the first explanation (reported on the model's detail)."""
        return sum(map(len, self.reference_files.values())) + len(self.background_bytes or b"")

    def reference(self) -> Any:
        """The reference model, loaded once from the kept verified bytes (None when the served model is the reference)."""
        with self._lock:
            if self.loaded is None and self.reference_files:
                started = time.perf_counter()
                folder = files.private_directory("sealserve-explain-")
                try:
                    for name, data in self.reference_files.items():
                        (folder / name).parent.mkdir(parents=True, exist_ok=True)
                        (folder / name).write_bytes(data)
                    path = folder / self.metadata.model_file
                    self.loaded = load_model_file(path, self.metadata.format, trusted_types=self.trusted_types, metadata=self.metadata)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                self.load_seconds = time.perf_counter() - started
            return self.loaded

    def background(self) -> list[dict[str, Any]] | None:
        """The signed background sample as client-shaped records, or None when the bundle has none."""
        if self.background_bytes is None:
            return None
        records = orjson.loads(self.background_bytes)
        if not isinstance(records, list) or not records or not all(isinstance(record, dict) for record in records):
            raise BundleFormatError("the bundle's background sample is not a list of records")
        return records
