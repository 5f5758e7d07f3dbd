"""scikit-learn's estimator catalog and skops, imported one thread at a time, with the cyclic collector paused.

Listing the catalog (sklearn's `all_estimators`, which `import skops.io` also runs) imports every sklearn module and
retries the ones that fail; two loader threads doing it at once race inside pkgutil (a KeyError, not a refusal).
"""

from __future__ import annotations

import functools
import gc
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

WALKING = threading.Lock()


@contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic collector off during a large import (skops, a server's app): its full passes over the growing module
    graph find next to nothing and cost a tenth of the import's CPU; what the import left is collected once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def untracked_at_exit() -> None:
    """Garbage is collected as usual, then what is left is frozen: the interpreter's own collections at exit would
    only walk every module's objects again (~0.3 s of CPU per process once a server's imports are in)."""
    gc.collect()
    gc.freeze()


@functools.cache
def estimator_names() -> frozenset[str]:
    """Every public scikit-learn estimator class, as skops trusts them by default (by pickled name)."""
    from sklearn.utils import all_estimators

    with WALKING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return frozenset(f"{cls.__module__}.{cls.__qualname__}" for _, cls in all_estimators())
