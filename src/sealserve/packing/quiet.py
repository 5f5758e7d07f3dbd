"""Native libraries (onnxruntime, the converters) write to file descriptor 2 directly, past `sys.stderr`: capture it there."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass


@dataclass
class Captured:
    text: str = ""


@contextmanager
def native_stderr_captured() -> Iterator[Captured]:
    """Route fd 2 to a temporary file for the block; the text is in the yielded object afterwards. Process-wide: any
    thread writing to stderr meanwhile is captured too, so keep the block to the noisy call."""
    captured = Captured()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to keep quiet
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            with suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")
