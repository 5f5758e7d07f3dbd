"""What the structure walker and the per-structure checks share: the walker's interface, the check signature, refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from sealserve.errors import UnsafeModelError


class Walk(Protocol):
    """The walker as a check sees it: a way to validate a structure the check reached through its owner."""

    def structure(self, obj: Any, where: str) -> None: ...


Check = Callable[[Walk, Any, str], None]


def fail(where: str, message: str) -> None:
    raise UnsafeModelError(f"{where}: {message}; the model file is corrupt or crafted")


def checked_array(value: Any, where: str, what: str, ndim: int) -> np.ndarray[Any, Any]:
    if not isinstance(value, np.ndarray) or value.ndim != ndim:
        fail(where, f"{what} is not a {ndim}-D array")
    array: np.ndarray[Any, Any] = value
    return array


def first_index(mask: np.ndarray[Any, Any]) -> int:
    return int(np.flatnonzero(mask)[0])
