"""Refuse a loaded model whose index arrays point outside their buffers, before anything runs it.

skops and the restricted unpickler only vouch for types; scikit-learn's Cython code then trusts the indices inside
trees, neighbour trees, sparse matrices and libsvm arrays without bounds checks, so a crafted file could crash the
server or read memory the first time it predicts. Everything here is vectorized numpy on the model's own arrays.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sealserve.errors import UnsafeModelError

MAX_DEPTH = 200
MAX_OBJECTS = 2_000_000

Check = Callable[["_Walk", Any, str], None]
LEAF_TYPES: tuple[type, ...] = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic, np.dtype, range, slice)
DTYPE_CLASSES: tuple[type, ...] = (int, float, complex, bool, str, bytes, object)
FUNCTION_TYPES: tuple[type, ...] = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, np.ufunc, functools.partial)
SKIPPED_TYPES: tuple[type, ...] = (*LEAF_TYPES, *FUNCTION_TYPES)


def check_structures(model: Any) -> None:
    """Walk the loaded object graph and validate every index-bearing structure; raise UnsafeModelError on the first bad one."""
    _Walk().run(model)


def _fail(where: str, message: str) -> None:
    raise UnsafeModelError(f"{where}: {message}; the model file is corrupt or crafted")


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
                _fail(where, f"the object graph has more than {MAX_OBJECTS} objects")
            if depth > MAX_DEPTH:
                _fail(where, f"objects are nested more than {MAX_DEPTH} levels deep")
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
            _fail(where, f"malformed {type(obj).__name__} ({type(exc).__name__}: {exc})")


def _check_class(cls: type, where: str) -> None:
    """A class held as a value can be called like a function (FunctionTransformer(func=cls)); estimators only hold dtypes."""
    if not (issubclass(cls, np.generic) or cls in DTYPE_CLASSES):
        _fail(where, f"holds the class {cls.__module__}.{cls.__qualname__} itself; only dtype classes may appear as values")


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
        ((Tree,), _check_tree),
        ((TreePredictor,), _check_predictor),
        (binary_trees, _check_binary_tree),
        ((DistanceMetric,), lambda walk, metric, where: _check_metric(metric, where, None)),
        ((spmatrix, sparray), _check_sparse),
        ((BSpline,), _check_bspline),
    ]
    owners: list[tuple[tuple[type, ...], Check]] = [
        ((BaseDecisionTree,), _check_decision_tree),
        ((BaseGradientBoosting,), _check_gradient_boosting),
        ((BaseHistGradientBoosting,), _check_hist_gradient_boosting),
        ((BaseLibSVM,), _check_libsvm),
        ((_BaseKMeans,), _check_kmeans),
        ((NeighborsBase,), lambda walk, est, where: _check_width(est, "_fit_X", where)),
    ]
    return structures, owners


def _array(value: Any, where: str, what: str, ndim: int) -> np.ndarray[Any, Any]:
    if not isinstance(value, np.ndarray) or value.ndim != ndim:
        _fail(where, f"{what} is not a {ndim}-D array")
    array: np.ndarray[Any, Any] = value
    return array


def _first(mask: np.ndarray[Any, Any]) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_tree_links(where: str, what: str, left: np.ndarray[Any, Any], right: np.ndarray[Any, Any], leaf: np.ndarray[Any, Any]) -> None:
    """Children come after their parent and every node but the root has exactly one parent: a tree, no cycles."""
    n = len(left)
    index = np.arange(n)
    left, right = left.astype(np.int64), right.astype(np.int64)
    bad = ~leaf & ~((left > index) & (left < n) & (right > index) & (right < n))
    if bad.any():
        i = _first(bad)
        _fail(where, f"{what} node {i} has children ({left[i]}, {right[i]}) outside ({i}, {n})")
    parents = np.bincount(np.concatenate([left[~leaf], right[~leaf]]), minlength=n)
    parents[0] += 1
    if (parents != 1).any():
        i = _first(parents != 1)
        _fail(where, f"{what} node {i} has {parents[i] - (i == 0)} parents; nodes must form a tree")


def _depth(left: np.ndarray[Any, Any], right: np.ndarray[Any, Any], leaf: np.ndarray[Any, Any]) -> int:
    """Deepest leaf, by pointer jumping over the parent links: log2(depth) vectorized rounds, even for chain-shaped trees."""
    inner = np.flatnonzero(~leaf)
    ancestor = np.zeros(len(left), dtype=np.int64)
    ancestor[left[inner]] = inner
    ancestor[right[inner]] = inner
    distance = (np.arange(len(left)) != 0).astype(np.int64)
    while ancestor.any():
        distance, ancestor = distance + distance[ancestor], ancestor[ancestor]
    return int(distance.max())


def _check_tree(walk: _Walk, tree: Any, where: str) -> None:
    what = "sklearn Tree"
    node_count, capacity = int(tree.node_count), int(tree.capacity)
    if not 1 <= node_count <= capacity:
        _fail(where, f"{what} node_count {node_count} is outside [1, capacity {capacity}]")
    n_features, n_outputs, max_n_classes = int(tree.n_features), int(tree.n_outputs), int(tree.max_n_classes)
    if min(n_features, n_outputs, max_n_classes) < 1:
        _fail(where, f"{what} has n_features {n_features}, n_outputs {n_outputs}, max_n_classes {max_n_classes}; all must be ≥ 1")
    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    if values.shape != (node_count, n_outputs, max_n_classes):
        _fail(
            where,
            f"{what} value shape {values.shape} is not (node_count, n_outputs, max_n_classes) {(node_count, n_outputs, max_n_classes)}",
        )
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == -1
    if (leaf != (right == -1)).any():
        i = _first(leaf != (right == -1))
        _fail(where, f"{what} node {i} has one child ({left[i]}, {right[i]}); a leaf has both -1")
    _check_tree_links(where, what, left, right, leaf)
    bad = ~leaf & ((feature < 0) | (feature >= n_features))
    if bad.any():
        i = _first(bad)
        _fail(where, f"{what} node {i} splits on feature {feature[i]} outside [0, n_features {n_features})")
    depth = _depth(left.astype(np.int64), right.astype(np.int64), leaf)
    if depth > int(tree.max_depth):
        _fail(where, f"{what} is {depth} deep but max_depth says {tree.max_depth}")


def _check_decision_tree(walk: _Walk, estimator: Any, where: str) -> None:
    from sklearn.tree._tree import Tree

    tree = vars(estimator).get("tree_")
    if tree is None:
        return
    if not isinstance(tree, Tree):
        _fail(f"{where}.tree_", f"is a {type(tree).__name__}, not a sklearn Tree")
    walk.structure(tree, f"{where}.tree_")
    for attribute, expected in (("n_features_in_", "n_features"), ("n_outputs_", "n_outputs")):
        value = vars(estimator).get(attribute)
        if value is not None and int(value) != int(getattr(tree, expected)):
            _fail(f"{where}.tree_", f"sklearn Tree {expected} {getattr(tree, expected)} differs from the estimator's {attribute} {value}")


def _check_gradient_boosting(walk: _Walk, estimator: Any, where: str) -> None:
    """predict_stages feeds every tree the X validated for estimators_[0, 0] and writes column k of an n_trees_per_iteration_ wide array."""
    members = vars(estimator).get("estimators_")
    if members is None:
        return
    members = _array(members, f"{where}.estimators_", "estimators_", 2)
    width = vars(estimator).get("n_trees_per_iteration_", members.shape[1])
    n_features = vars(estimator).get("n_features_in_")
    if members.shape[1] != int(width):
        _fail(f"{where}.estimators_", f"{members.shape[1]} trees per stage but n_trees_per_iteration_ is {width}")
    for i, member in enumerate(members.ravel()):
        member_features = getattr(member, "n_features_in_", None)
        if n_features is not None and member_features != n_features:
            _fail(f"{where}.estimators_[{i}]", f"stage tree has n_features_in_ {member_features}, the ensemble {n_features}")


def _check_predictor(walk: _Walk, predictor: Any, where: str) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    what = "HistGradientBoosting TreePredictor"
    nodes = _array(vars(predictor).get("nodes"), where, f"{what} nodes", 1)
    if nodes.dtype != PREDICTOR_RECORD_DTYPE or len(nodes) == 0:
        _fail(where, f"{what} nodes are empty or not PREDICTOR_RECORD_DTYPE")
    leaf = nodes["is_leaf"] != 0
    _check_tree_links(where, what, nodes["left"], nodes["right"], leaf)
    if (~leaf & (nodes["feature_idx"] < 0)).any():
        _fail(where, f"{what} node {_first(~leaf & (nodes['feature_idx'] < 0))} splits on a negative feature index")
    rows = []
    for name in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
        bitsets = _array(vars(predictor).get(name), where, f"{what} {name}", 2)
        if bitsets.shape[1] != 8 or bitsets.dtype != np.uint32:
            _fail(where, f"{what} {name} has shape {bitsets.shape} and dtype {bitsets.dtype}, not (n, 8) uint32")
        rows.append(bitsets.shape[0])
    categorical = ~leaf & (nodes["is_categorical"] != 0)
    bad = categorical & (nodes["bitset_idx"].astype(np.int64) >= min(rows))
    if bad.any():
        i = _first(bad)
        _fail(where, f"{what} node {i} uses bitset {nodes['bitset_idx'][i]} outside [0, {min(rows)})")


def _check_hist_gradient_boosting(walk: _Walk, estimator: Any, where: str) -> None:
    """_raw_predict does not re-check X's width after preprocessing, so every split must index inside it."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    predictors = vars(estimator).get("_predictors")
    if predictors is None:
        return
    width = _hgb_input_width(estimator, where)
    mapper = vars(estimator).get("_bin_mapper")
    categorical = np.asarray(getattr(mapper, "is_categorical_", np.zeros(width)), dtype=bool)
    for i, iteration in enumerate(predictors):
        for k, predictor in enumerate(iteration):
            path = f"{where}._predictors[{i}][{k}]"
            if not isinstance(predictor, TreePredictor):
                _fail(path, f"is a {type(predictor).__name__}, not a TreePredictor")
            walk.structure(predictor, path)
            nodes = vars(predictor)["nodes"]
            split = nodes["is_leaf"] == 0
            features = nodes["feature_idx"]
            bad = split & (features >= width)
            if bad.any():
                j = _first(bad)
                _fail(path, f"TreePredictor node {j} splits on feature {features[j]} outside [0, {width})")
            cat_features = features[split & (nodes["is_categorical"] != 0)]
            if cat_features.size and ((cat_features >= len(categorical)).any() or not categorical[cat_features].all()):
                _fail(path, "TreePredictor has a categorical split on a feature the bin mapper does not mark categorical")


def _hgb_input_width(estimator: Any, where: str) -> int:
    """Width of X when it reaches the predictors: n_features_in_, or what the categorical preprocessor outputs."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder
    from sklearn.utils.validation import check_array

    n_features = int(vars(estimator).get("n_features_in_", -1))
    preprocessor = vars(estimator).get("_preprocessor")
    if preprocessor is None:
        return n_features
    if not isinstance(preprocessor, ColumnTransformer):
        _fail(f"{where}._preprocessor", f"expected a ColumnTransformer, found {type(preprocessor).__name__}")
    width = 0
    for name, transformer, columns in vars(preprocessor).get("transformers_", []):
        if isinstance(transformer, str) and transformer == "drop":
            continue
        identity = isinstance(transformer, FunctionTransformer) and _unwrap(vars(transformer).get("func")) in (None, check_array)
        if not (identity or isinstance(transformer, OrdinalEncoder) or (isinstance(transformer, str) and transformer == "passthrough")):
            _fail(f"{where}._preprocessor", f"transformer {name!r} is a {type(transformer).__name__}, which may change X's width")
        width += _column_count(columns, n_features, f"{where}._preprocessor")
    if width != n_features:
        _fail(f"{where}._preprocessor", f"outputs {width} columns but the estimator expects {n_features}")
    return n_features


def _unwrap(func: Any) -> Any:
    return func.func if isinstance(func, functools.partial) else func


def _column_count(columns: Any, n_features: int, where: str) -> int:
    if isinstance(columns, str | int):
        return 1
    if isinstance(columns, slice):
        return len(range(n_features)[columns])
    selection = np.asarray(columns)
    if selection.dtype == bool:
        if selection.shape != (n_features,):
            _fail(where, f"a boolean column mask has shape {selection.shape}, not ({n_features},)")
        return int(selection.sum())
    if selection.ndim == 1 and selection.dtype.kind in "iuUO":
        return len(selection)
    _fail(where, f"unsupported column selection of type {type(columns).__name__}")
    return 0


def _check_binary_tree(walk: _Walk, tree: Any, where: str) -> None:
    from sklearn.neighbors import _kd_tree

    what = type(tree).__name__
    state = tree.__getstate__()
    data = _array(state[0], where, f"{what} data", 2)
    idx_array = _array(state[1], where, f"{what} idx_array", 1)
    node_data = _array(state[2], where, f"{what} node_data", 1)
    node_bounds = _array(state[3], where, f"{what} node_bounds", 3)
    leaf_size, n_nodes, sample_weight = int(state[4]), int(state[6]), state[12]
    n_samples, n_features = data.shape
    if min(n_samples, n_features, leaf_size, n_nodes) < 1:
        _fail(where, f"{what} has {n_samples} samples, {n_features} features, leaf_size {leaf_size}, {n_nodes} nodes; all must be ≥ 1")
    if len(idx_array) != n_samples or ((idx_array < 0) | (idx_array >= n_samples)).any():
        _fail(where, f"{what} idx_array has length {len(idx_array)} or entries outside [0, n_samples {n_samples})")
    if (np.bincount(idx_array, minlength=n_samples) != 1).any():
        _fail(where, f"{what} idx_array is not a permutation of range({n_samples})")
    bounds_rows = 2 if isinstance(tree, _kd_tree.BinaryTree64 | _kd_tree.BinaryTree32) else 1
    if len(node_data) != n_nodes or node_bounds.shape != (bounds_rows, n_nodes, n_features):
        _fail(where, f"{what} has {len(node_data)} node_data, node_bounds {node_bounds.shape} for {n_nodes} nodes, {n_features} features")
    if sample_weight is not None and np.shape(sample_weight) != (n_samples,):
        _fail(where, f"{what} sample_weight has shape {np.shape(sample_weight)}, not ({n_samples},)")
    _check_node_ranges(where, what, node_data, n_samples)
    _check_metric(state[11], f"{where}.dist_metric", n_features)


def _check_node_ranges(where: str, what: str, node_data: np.ndarray[Any, Any], n_samples: int) -> None:
    """Nodes live in an implicit heap (children 2i+1, 2i+2); reachable ones split their parent's idx_array range in two."""
    start, end, leaf = node_data["idx_start"], node_data["idx_end"], node_data["is_leaf"] != 0
    if start[0] != 0 or end[0] != n_samples:
        _fail(where, f"{what} root covers [{start[0]}, {end[0]}), not [0, {n_samples})")
    level = np.zeros(1, dtype=np.int64)
    while level.size:
        inner = level[~leaf[level]]
        if inner.size and 2 * inner.max() + 2 >= len(node_data):
            _fail(where, f"{what} node {inner.max()} is not a leaf but has no children among {len(node_data)} nodes")
        left, right = 2 * inner + 1, 2 * inner + 2
        ok = (start[left] == start[inner]) & (end[left] == start[right]) & (end[right] == end[inner])
        ok &= (start[left] <= end[left]) & (start[right] <= end[right])
        if not ok.all():
            i = int(inner[~ok][0])
            _fail(where, f"{what} node {i}'s children do not split its range [{start[i]}, {end[i]})")
        level = np.concatenate([left, right])


def _check_metric(metric: Any, where: str, n_features: int | None) -> None:
    """Parameter vectors and matrices are read for every feature index without bounds checks."""
    name = type(metric).__name__
    if name.startswith("PyFuncDistance"):
        _fail(where, f"{name} calls a Python function; callable metrics are refused")
    _, vec, mat = metric.__getstate__()[:3]
    size = n_features
    if name.startswith("SEuclidean") and (vec.ndim != 1 or (size is not None and len(vec) != size)):
        _fail(where, f"{name} V has shape {vec.shape}, not ({size},)")
    if name.startswith("Minkowski") and (vec.ndim != 1 or (size is not None and len(vec) not in (0, size))):
        _fail(where, f"{name} w has shape {vec.shape}, not (0,) or ({size},)")
    if name.startswith("Mahalanobis") and (mat.ndim != 2 or mat.shape[0] != mat.shape[1] or (size is not None and mat.shape[0] != size)):
        _fail(where, f"{name} VI has shape {mat.shape}, not ({size}, {size})")
    if name.startswith("Haversine") and size is not None and size != 2:
        _fail(where, f"{name} needs exactly 2 features, the tree has {size}")


def _check_sparse(walk: _Walk, matrix: Any, where: str) -> None:
    what = f"sparse {matrix.format} matrix"
    shape = tuple(int(n) for n in matrix.shape)
    if len(shape) != 2 or min(shape) < 0:
        _fail(where, f"{what} has shape {shape}")
    if matrix.format in ("csr", "csc", "bsr"):
        rows, cols = shape if matrix.format != "csc" else shape[::-1]
        if matrix.format == "bsr":
            block_rows, block_cols = matrix.blocksize
            rows, cols = rows // block_rows, cols // block_cols
        indptr, indices = matrix.indptr, matrix.indices
        if indptr.shape != (rows + 1,) or indptr[0] != 0 or (np.diff(indptr) < 0).any():
            _fail(where, f"{what} indptr is not a non-decreasing array of {rows + 1} offsets from 0")
        nnz = int(indptr[-1])
        if nnz > len(indices) or nnz > len(matrix.data):
            _fail(where, f"{what} indptr ends at {nnz}, past its {len(indices)} indices or {len(matrix.data)} values")
        if nnz and ((indices[:nnz] < 0) | (indices[:nnz] >= cols)).any():
            _fail(where, f"{what} has a column index outside [0, {cols})")
    elif matrix.format == "coo":
        for axis, coords in enumerate(getattr(matrix, "coords", None) or (matrix.row, matrix.col)):
            if coords.size and ((coords < 0) | (coords >= shape[axis])).any():
                _fail(where, f"{what} has an index outside [0, {shape[axis]}) on axis {axis}")


def _check_bspline(walk: _Walk, spline: Any, where: str) -> None:
    """What BSpline.__init__ validates; skops restores the attributes without calling it."""
    knots, coefficients, k = vars(spline).get("_t"), vars(spline).get("_c"), vars(spline).get("k")
    if not isinstance(k, int | np.integer) or k < 0:
        _fail(where, f"BSpline degree {k!r} is not a non-negative integer")
    knots = _array(knots, where, "BSpline knots", 1)
    if not isinstance(coefficients, np.ndarray) or coefficients.ndim < 1:
        _fail(where, "BSpline coefficients are not an array")
    n = len(knots) - int(k) - 1
    if n < int(k) + 1 or coefficients.shape[0] < n or not np.isfinite(knots).all() or (np.diff(knots) < 0).any():
        _fail(where, f"BSpline of degree {k} has {len(knots)} knots and {coefficients.shape[0]} coefficients; inconsistent or unsorted")


def _check_libsvm(walk: _Walk, estimator: Any, where: str) -> None:
    """libsvm sizes its model from these arrays and reads n_class·(n_class−1)/2 intercepts and probabilities."""
    state = vars(estimator)
    if "support_" not in state or "_n_support" not in state:
        return
    support, n_support = np.asarray(state["support_"]), np.asarray(state["_n_support"])
    vectors, dual, intercept = state.get("support_vectors_"), state.get("_dual_coef_"), np.asarray(state.get("_intercept_"))
    n_sv, n_class = len(support), len(n_support)
    pairs = n_class * (n_class - 1) // 2
    if n_class < 2 or dual is None or dual.shape != (n_class - 1, n_sv) or intercept.shape != (pairs,):
        _fail(where, f"libsvm arrays disagree: {n_class} classes, {n_sv} support vectors, dual_coef {getattr(dual, 'shape', None)}")
    if getattr(dual, "format", None) == "csr" and dual.data.size != (n_class - 1) * n_sv:
        _fail(where, f"libsvm sparse dual_coef holds {dual.data.size} values, not {(n_class - 1) * n_sv}")
    for name in ("_probA", "_probB"):
        if np.asarray(state.get(name, ())).size not in (0, pairs):
            _fail(where, f"libsvm {name} has {np.asarray(state.get(name)).size} values, not 0 or {pairs}")
    if getattr(type(estimator), "_impl", state.get("_impl")) in ("c_svc", "nu_svc") and (
        (n_support < 0).any() or int(n_support.sum()) != n_sv
    ):
        _fail(where, f"libsvm n_support {n_support.tolist()} does not add up to {n_sv} support vectors")
    if state.get("kernel") == "precomputed":
        fitted = np.asarray(state.get("shape_fit_", (0,)))[0]
        if n_sv and ((support < 0) | (support >= fitted)).any():
            _fail(where, f"libsvm support_ indexes outside the {fitted} training samples of a precomputed kernel")
    elif vectors is None or len(vectors.shape) != 2 or vectors.shape[0] != n_sv:
        _fail(where, f"libsvm has {n_sv} support indices but support_vectors_ of shape {getattr(vectors, 'shape', None)}")


def _check_width(estimator: Any, attribute: str, where: str) -> None:
    """Cython distance and k-means loops read this array for every column of the validated X."""
    value, n_features = vars(estimator).get(attribute), vars(estimator).get("n_features_in_")
    shape = getattr(value, "shape", None)
    if n_features is not None and shape is not None and (len(shape) != 2 or shape[1] != n_features):
        _fail(f"{where}.{attribute}", f"shape {shape} does not have n_features_in_ {n_features} columns")


def _check_kmeans(walk: _Walk, estimator: Any, where: str) -> None:
    _check_width(estimator, "cluster_centers_", where)
    node, n_features = vars(estimator).get("_bisecting_tree"), vars(estimator).get("n_features_in_")
    pending, seen = [node] if node is not None else [], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            _fail(f"{where}._bisecting_tree", "the bisecting tree has a cycle")
        seen.add(id(node))
        center = np.asarray(vars(node).get("center"))
        if n_features is not None and center.shape != (n_features,):
            _fail(f"{where}._bisecting_tree", f"a cluster center has shape {center.shape}, not ({n_features},)")
        pending.extend(child for child in (vars(node).get("left"), vars(node).get("right")) if child is not None)
