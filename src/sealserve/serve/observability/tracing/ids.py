"""A request's trace and span ids as one 192-bit number, the trace id above the span id's 64 bits.

A root request's sampling is decided on 64 random bits, its trace id's low half (the ratio samplers' rule); only a
kept root draws the rest. A root the sampler drops gets no ids: its trace is neither exported nor passed on, so ids on
its access line would match nothing (docs/observability.md#tracing).
"""

from __future__ import annotations

import random

LOW_64 = (1 << 64) - 1
TRACE_IDS = "trace_ids"  # the key of a request's ids in its ASGI scope's state, for its access line


def root_low() -> int:
    """The low 64 bits of a root's trace id, drawn first: what the sampler decides on."""
    return random.getrandbits(64)


def root_ids(low: int) -> int:
    """The ids of a kept root whose trace id ends in `low`: its high half and a span id drawn now (neither all zeros)."""
    return ((random.getrandbits(64) or 1) << 64 | low) << 64 | (random.getrandbits(64) or 1)


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
