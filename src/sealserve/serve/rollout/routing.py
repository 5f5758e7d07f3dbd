"""Which version answers a canary request: a hash of its sticky key, the same in every worker and replica.

The hash is BLAKE2b over the model name and the key, never Python's `hash()` (salted per process), so two workers
or two replicas send one key to one version with no shared state. Without a key the choice is random.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sealserve.runtime.columns import Columns

MAX_KEY = 256  # characters of a key that count: a client cannot make the hash slow


def bucket(model: str, key: str) -> float:
    """Where `key` falls in [0, 1) for `model`: uniform, and stable across processes and releases."""
    digest = hashlib.blake2b(f"{model}\0{key[:MAX_KEY]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def sticky_key(sticky_by: str | None, headers: Mapping[str, str] | None, batch: Sequence[Any] | Columns) -> str | None:
    """The request's key: a header (HTTP header or gRPC metadata), or a field of its first record; None without one."""
    if sticky_by is None:
        return None
    kind, _, name = sticky_by.partition(":")
    if kind == "header":
        value = headers.get(name.lower()) if headers is not None else None
        return value or None
    return _field(batch, name)


def _field(batch: Sequence[Any] | Columns, name: str) -> str | None:
    """A batch is routed by its first record's value; a number keys by its value (3, 3.0 and "3" are one key)."""
    if len(batch) == 0:
        return None
    if isinstance(batch, Columns):
        column = batch.arrays.get(name)
        value = column[0] if column is not None else None
    else:
        first = batch[0]
        value = first.get(name) if isinstance(first, dict) else getattr(first, name, None)
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value.value if hasattr(value, "value") and not isinstance(value, int | str) else value)


class Chooser:
    """Canary routing for one candidate: `weight` of the keys (or of the requests, without keys) go to the candidate."""

    def __init__(self, model: str, weight: float, sticky_by: str | None, seed: int | None = None) -> None:
        self.model, self.weight, self.sticky_by = model, weight, sticky_by
        self._random = random.Random(seed)  # noqa: S311 - traffic splitting, not cryptography

    def candidate(self, headers: Mapping[str, str] | None, batch: Sequence[Any] | Columns) -> bool:
        key = sticky_key(self.sticky_by, headers, batch)
        if key is None:
            return self._random.random() < self.weight
        return bucket(self.model, key) < self.weight
