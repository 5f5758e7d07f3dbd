"""Refuse a loaded model whose index arrays point outside their buffers, before anything runs it.

skops and the restricted unpickler only vouch for types; scikit-learn's Cython code then trusts the indices inside
trees, neighbour trees, sparse matrices and libsvm arrays without bounds checks, so a crafted file could crash the
server or read memory the first time it predicts. Everything here is vectorized numpy on the model's own arrays.
This module walks the object graph; the checks per structure live in integrity_trees and integrity_arrays.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from sealserve.trust.integrity.arrays import (
    check_binary_tree,
    check_bspline,
    check_kmeans,
    check_libsvm,
    check_metric,
    check_sparse,
    check_width,
)
from sealserve.trust.integrity.common import Check, fail
from sealserve.trust.integrity.trees import (
    check_decision_tree,
    check_gradient_boosting,
    check_hist_gradient_boosting,
    check_predictor,
    check_tree,
)

MAX_DEPTH = 200
MAX_OBJECTS = 2_000_000

LEAF_TYPES: tuple[type, ...] = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic, np.dtype, range, slice)
DTYPE_CLASSES: tuple[type, ...] = (int, float, complex, bool, str, bytes, object)
FUNCTION_TYPES: tuple[type, ...] = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, np.ufunc, functools.partial)
SKIPPED_TYPES: tuple[type, ...] = (*LEAF_TYPES, *FUNCTION_TYPES)


def check_structures(model: Any) -> None:
    """Walk the loaded object graph and validate every index-bearing structure; raise UnsafeModelError on the first bad one."""
    _Walk().run(model)


class _Walk:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.checked: set[int] = set()
        self.structures, self.owners = _registry()

    def run(self, model: Any) -> None:
        stack: list[tuple[Any, str, int]] = [(model, "model", 0)]
        while stack:
            obj, where, depth = stack.pop()
            if id(obj) in self.seen:
                continue
            self.seen.add(id(obj))
            if len(self.seen) > MAX_OBJECTS:
                fail(where, f"the object graph has more than {MAX_OBJECTS} objects")
            if depth > MAX_DEPTH:
                fail(where, f"objects are nested more than {MAX_DEPTH} levels deep")
            if isinstance(obj, type):
                _check_class(obj, where)
                continue
            self.structure(obj, where)
            for classes, check in self.owners:
                if isinstance(obj, classes):
                    self.guarded(check, obj, where)
            stack.extend((child, path, depth + 1) for child, path in _children(obj, where))

    def structure(self, obj: Any, where: str) -> None:
        """Run the structure's own check once, whichever owner or path reaches it first."""
        for classes, check in self.structures:
            if isinstance(obj, classes):
                if id(obj) not in self.checked:
                    self.checked.add(id(obj))
                    self.guarded(check, obj, where)
                return

    def guarded(self, check: Check, obj: Any, where: str) -> None:
        """A structure too malformed for the check itself to read is refused, not reported as a crash."""
        try:
            check(self, obj, where)
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            fail(where, f"malformed {type(obj).__name__} ({type(exc).__name__}: {exc})")


def _check_class(cls: type, where: str) -> None:
    """A class held as a value can be called like a function (FunctionTransformer(func=cls)); estimators only hold dtypes."""
    if not (issubclass(cls, np.generic) or cls in DTYPE_CLASSES):
        fail(where, f"holds the class {cls.__module__}.{cls.__qualname__} itself; only dtype classes may appear as values")


def _children(obj: Any, where: str) -> Iterator[tuple[Any, str]]:
    if isinstance(obj, functools.partial):
        yield from _children((obj.args, obj.keywords), f"{where}(partial)")
        return
    if isinstance(obj, SKIPPED_TYPES):
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            yield from ((item, f"{where}[{i}]") for i, item in enumerate(obj.ravel(order="K")) if not isinstance(item, LEAF_TYPES))
        return
    if isinstance(obj, dict):
        for key, value in dict.items(obj):
            yield from ((item, f"{where}[{key!r}]") for item in (key, value) if not isinstance(item, LEAF_TYPES))
        return
    if isinstance(obj, list | tuple | set | frozenset):
        yield from ((item, f"{where}[{i}]") for i, item in enumerate(obj) if not isinstance(item, LEAF_TYPES))
        return
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        yield from ((value, f"{where}.{name}") for name, value in dict.items(attributes) if not isinstance(value, LEAF_TYPES))


@functools.cache
def _registry() -> tuple[list[tuple[tuple[type, ...], Check]], list[tuple[tuple[type, ...], Check]]]:
    """Structure checks by the structure's type, and owner checks by the estimator that feeds the structure its input."""
    from scipy.interpolate import BSpline
    from scipy.sparse import sparray, spmatrix
    from sklearn.cluster._kmeans import _BaseKMeans
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import BaseHistGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.metrics._dist_metrics import DistanceMetric
    from sklearn.neighbors import _ball_tree, _kd_tree
    from sklearn.neighbors._base import NeighborsBase
    from sklearn.svm._base import BaseLibSVM
    from sklearn.tree._classes import BaseDecisionTree
    from sklearn.tree._tree import Tree

    binary_trees = (_kd_tree.BinaryTree64, _kd_tree.BinaryTree32, _ball_tree.BinaryTree64, _ball_tree.BinaryTree32)
    structures: list[tuple[tuple[type, ...], Check]] = [
        ((Tree,), check_tree),
        ((TreePredictor,), check_predictor),
        (binary_trees, check_binary_tree),
        ((DistanceMetric,), lambda walk, metric, where: check_metric(metric, where, None)),
        ((spmatrix, sparray), check_sparse),
        ((BSpline,), check_bspline),
    ]
    owners: list[tuple[tuple[type, ...], Check]] = [
        ((BaseDecisionTree,), check_decision_tree),
        ((BaseGradientBoosting,), check_gradient_boosting),
        ((BaseHistGradientBoosting,), check_hist_gradient_boosting),
        ((BaseLibSVM,), check_libsvm),
        ((_BaseKMeans,), check_kmeans),
        ((NeighborsBase,), lambda walk, est, where: check_width(est, "_fit_X", where)),
    ]
    return structures, owners
