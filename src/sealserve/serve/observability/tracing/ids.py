"""A request's trace and span ids as one 192-bit number, the trace id above the span id's 64 bits.

Every traced request gets both, sampled or not, for its access line: one random draw and one hex formatting are most
of what an unsampled request's tracing costs (docs/performance.md, "What tracing costs").
"""

from __future__ import annotations

import random

LOW_64 = (1 << 64) - 1
TRACE_IDS = "trace_ids"  # the key of a request's ids in its ASGI scope's state, for its access line


def drawn_ids() -> int:
    """A root's ids: 192 random bits, drawn again in the (2**-64) case that either id would be all zeros (invalid)."""
    ids = random.getrandbits(192)
    while not (ids & LOW_64 and ids >> 64):
        ids = random.getrandbits(192)
    return ids


def continued_ids(trace_id: int) -> int:
    """The ids of a server span in the caller's trace `trace_id`: the caller's trace id, a span id of its own."""
    return trace_id << 64 | (random.getrandbits(64) or 1)


def trace_id_of(ids: int) -> int:
    return ids >> 64


def span_id_of(ids: int) -> int:
    return ids & LOW_64


def hex_ids(ids: int) -> tuple[str, str]:
    """The trace and span ids as the W3C `traceparent` writes them: 32 and 16 lowercase hex digits."""
    text = ids.to_bytes(24, "big").hex()
    return text[:32], text[32:]
