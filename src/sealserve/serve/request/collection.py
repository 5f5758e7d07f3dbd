"""Garbage collection paused while a large batch is turned into Python objects and back.

A 10,000-record batch allocates tens of thousands of dicts and lists that cannot form cycles; each few hundred
allocations would start a collection that walks every object the server holds (models included), which cost more
than the decoding itself. Reference counting frees these objects; collection resumes when the section ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

LARGE = 1000  # bodies or batches below this many rows are decoded with collection on


@contextmanager
def collection_paused(rows: int = LARGE) -> Iterator[None]:
    """Pause the cyclic collector for this section when it handles at least LARGE rows (or when called without a size)."""
    if rows < LARGE or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
