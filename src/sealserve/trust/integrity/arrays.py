"""Checks of the other index-bearing structures: KD/Ball trees and their metrics, sparse matrices, splines, libsvm, k-means."""

from __future__ import annotations

from typing import Any

import numpy as np

from sealserve.trust.integrity.common import Walk, checked_array, fail


def check_binary_tree(walk: Walk, tree: Any, where: str) -> None:
    from sklearn.neighbors import _kd_tree

    what = type(tree).__name__
    state = tree.__getstate__()
    data = checked_array(state[0], where, f"{what} data", 2)
    idx_array = checked_array(state[1], where, f"{what} idx_array", 1)
    node_data = checked_array(state[2], where, f"{what} node_data", 1)
    node_bounds = checked_array(state[3], where, f"{what} node_bounds", 3)
    leaf_size, n_nodes, sample_weight = int(state[4]), int(state[6]), state[12]
    n_samples, n_features = data.shape
    if min(n_samples, n_features, leaf_size, n_nodes) < 1:
        fail(where, f"{what} has {n_samples} samples, {n_features} features, leaf_size {leaf_size}, {n_nodes} nodes; all must be ≥ 1")
    if len(idx_array) != n_samples or ((idx_array < 0) | (idx_array >= n_samples)).any():
        fail(where, f"{what} idx_array has length {len(idx_array)} or entries outside [0, n_samples {n_samples})")
    if (np.bincount(idx_array, minlength=n_samples) != 1).any():
        fail(where, f"{what} idx_array is not a permutation of range({n_samples})")
    bounds_rows = 2 if isinstance(tree, _kd_tree.BinaryTree64 | _kd_tree.BinaryTree32) else 1
    if len(node_data) != n_nodes or node_bounds.shape != (bounds_rows, n_nodes, n_features):
        fail(where, f"{what} has {len(node_data)} node_data, node_bounds {node_bounds.shape} for {n_nodes} nodes, {n_features} features")
    if sample_weight is not None and np.shape(sample_weight) != (n_samples,):
        fail(where, f"{what} sample_weight has shape {np.shape(sample_weight)}, not ({n_samples},)")
    _check_node_ranges(where, what, node_data, n_samples)
    check_metric(state[11], f"{where}.dist_metric", n_features)


def _check_node_ranges(where: str, what: str, node_data: np.ndarray[Any, Any], n_samples: int) -> None:
    """Nodes live in an implicit heap (children 2i+1, 2i+2); reachable ones split their parent's idx_array range in two."""
    start, end, leaf = node_data["idx_start"], node_data["idx_end"], node_data["is_leaf"] != 0
    if start[0] != 0 or end[0] != n_samples:
        fail(where, f"{what} root covers [{start[0]}, {end[0]}), not [0, {n_samples})")
    level = np.zeros(1, dtype=np.int64)
    while level.size:
        inner = level[~leaf[level]]
        if inner.size and 2 * inner.max() + 2 >= len(node_data):
            fail(where, f"{what} node {inner.max()} is not a leaf but has no children among {len(node_data)} nodes")
        left, right = 2 * inner + 1, 2 * inner + 2
        ok = (start[left] == start[inner]) & (end[left] == start[right]) & (end[right] == end[inner])
        ok &= (start[left] <= end[left]) & (start[right] <= end[right])
        if not ok.all():
            i = int(inner[~ok][0])
            fail(where, f"{what} node {i}'s children do not split its range [{start[i]}, {end[i]})")
        level = np.concatenate([left, right])


def check_metric(metric: Any, where: str, n_features: int | None) -> None:
    """Parameter vectors and matrices are read for every feature index without bounds checks."""
    name = type(metric).__name__
    if name.startswith("PyFuncDistance"):
        fail(where, f"{name} calls a Python function; callable metrics are refused")
    _, vec, mat = metric.__getstate__()[:3]
    size = n_features
    if name.startswith("SEuclidean") and (vec.ndim != 1 or (size is not None and len(vec) != size)):
        fail(where, f"{name} V has shape {vec.shape}, not ({size},)")
    if name.startswith("Minkowski") and (vec.ndim != 1 or (size is not None and len(vec) not in (0, size))):
        fail(where, f"{name} w has shape {vec.shape}, not (0,) or ({size},)")
    if name.startswith("Mahalanobis") and (mat.ndim != 2 or mat.shape[0] != mat.shape[1] or (size is not None and mat.shape[0] != size)):
        fail(where, f"{name} VI has shape {mat.shape}, not ({size}, {size})")
    if name.startswith("Haversine") and size is not None and size != 2:
        fail(where, f"{name} needs exactly 2 features, the tree has {size}")


def check_sparse(walk: Walk, matrix: Any, where: str) -> None:
    what = f"sparse {matrix.format} matrix"
    shape = tuple(int(n) for n in matrix.shape)
    if len(shape) != 2 or min(shape) < 0:
        fail(where, f"{what} has shape {shape}")
    if matrix.format in ("csr", "csc", "bsr"):
        rows, cols = shape if matrix.format != "csc" else shape[::-1]
        if matrix.format == "bsr":
            block_rows, block_cols = matrix.blocksize
            rows, cols = rows // block_rows, cols // block_cols
        indptr, indices = matrix.indptr, matrix.indices
        if indptr.shape != (rows + 1,) or indptr[0] != 0 or (np.diff(indptr) < 0).any():
            fail(where, f"{what} indptr is not a non-decreasing array of {rows + 1} offsets from 0")
        nnz = int(indptr[-1])
        if nnz > len(indices) or nnz > len(matrix.data):
            fail(where, f"{what} indptr ends at {nnz}, past its {len(indices)} indices or {len(matrix.data)} values")
        if nnz and ((indices[:nnz] < 0) | (indices[:nnz] >= cols)).any():
            fail(where, f"{what} has a column index outside [0, {cols})")
    elif matrix.format == "coo":
        for axis, coords in enumerate(getattr(matrix, "coords", None) or (matrix.row, matrix.col)):
            if coords.size and ((coords < 0) | (coords >= shape[axis])).any():
                fail(where, f"{what} has an index outside [0, {shape[axis]}) on axis {axis}")


def check_bspline(walk: Walk, spline: Any, where: str) -> None:
    """What BSpline.__init__ validates; skops restores the attributes without calling it."""
    knots, coefficients, k = vars(spline).get("_t"), vars(spline).get("_c"), vars(spline).get("k")
    if not isinstance(k, int | np.integer) or k < 0:
        fail(where, f"BSpline degree {k!r} is not a non-negative integer")
    knots = checked_array(knots, where, "BSpline knots", 1)
    if not isinstance(coefficients, np.ndarray) or coefficients.ndim < 1:
        fail(where, "BSpline coefficients are not an array")
    n = len(knots) - int(k) - 1
    if n < int(k) + 1 or coefficients.shape[0] < n or not np.isfinite(knots).all() or (np.diff(knots) < 0).any():
        fail(where, f"BSpline of degree {k} has {len(knots)} knots and {coefficients.shape[0]} coefficients; inconsistent or unsorted")


def check_libsvm(walk: Walk, estimator: Any, where: str) -> None:
    """libsvm sizes its model from these arrays and reads n_class·(n_class−1)/2 intercepts and probabilities."""
    state = vars(estimator)
    if "support_" not in state or "_n_support" not in state:
        return
    support, n_support = np.asarray(state["support_"]), np.asarray(state["_n_support"])
    vectors, dual, intercept = state.get("support_vectors_"), state.get("_dual_coef_"), np.asarray(state.get("_intercept_"))
    n_sv, n_class = len(support), len(n_support)
    pairs = n_class * (n_class - 1) // 2
    if n_class < 2 or dual is None or dual.shape != (n_class - 1, n_sv) or intercept.shape != (pairs,):
        fail(where, f"libsvm arrays disagree: {n_class} classes, {n_sv} support vectors, dual_coef {getattr(dual, 'shape', None)}")
    if getattr(dual, "format", None) == "csr" and dual.data.size != (n_class - 1) * n_sv:
        fail(where, f"libsvm sparse dual_coef holds {dual.data.size} values, not {(n_class - 1) * n_sv}")
    for name in ("_probA", "_probB"):
        if np.asarray(state.get(name, ())).size not in (0, pairs):
            fail(where, f"libsvm {name} has {np.asarray(state.get(name)).size} values, not 0 or {pairs}")
    if getattr(type(estimator), "_impl", state.get("_impl")) in ("c_svc", "nu_svc") and (
        (n_support < 0).any() or int(n_support.sum()) != n_sv
    ):
        fail(where, f"libsvm n_support {n_support.tolist()} does not add up to {n_sv} support vectors")
    if state.get("kernel") == "precomputed":
        fitted = np.asarray(state.get("shape_fit_", (0,)))[0]
        if n_sv and ((support < 0) | (support >= fitted)).any():
            fail(where, f"libsvm support_ indexes outside the {fitted} training samples of a precomputed kernel")
    elif vectors is None or len(vectors.shape) != 2 or vectors.shape[0] != n_sv:
        fail(where, f"libsvm has {n_sv} support indices but support_vectors_ of shape {getattr(vectors, 'shape', None)}")


def check_width(estimator: Any, attribute: str, where: str) -> None:
    """Cython distance and k-means loops read this array for every column of the validated X."""
    value, n_features = vars(estimator).get(attribute), vars(estimator).get("n_features_in_")
    shape = getattr(value, "shape", None)
    if n_features is not None and shape is not None and (len(shape) != 2 or shape[1] != n_features):
        fail(f"{where}.{attribute}", f"shape {shape} does not have n_features_in_ {n_features} columns")


def check_kmeans(walk: Walk, estimator: Any, where: str) -> None:
    check_width(estimator, "cluster_centers_", where)
    node, n_features = vars(estimator).get("_bisecting_tree"), vars(estimator).get("n_features_in_")
    pending, seen = [node] if node is not None else [], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            fail(f"{where}._bisecting_tree", "the bisecting tree has a cycle")
        seen.add(id(node))
        center = np.asarray(vars(node).get("center"))
        if n_features is not None and center.shape != (n_features,):
            fail(f"{where}._bisecting_tree", f"a cluster center has shape {center.shape}, not ({n_features},)")
        pending.extend(child for child in (vars(node).get("left"), vars(node).get("right")) if child is not None)
