"""Checks of the tree ensembles scikit-learn predicts with: sklearn Tree, gradient boosting, HistGradientBoosting predictors.

Tree.predict and TreePredictor follow child links and index X by split feature without bounds checks.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from sealserve.trust.integrity.common import Walk, checked_array, fail, first_index


def _check_tree_links(where: str, what: str, left: np.ndarray[Any, Any], right: np.ndarray[Any, Any], leaf: np.ndarray[Any, Any]) -> None:
    """Children come after their parent and every node but the root has exactly one parent: a tree, no cycles."""
    n = len(left)
    index = np.arange(n)
    left, right = left.astype(np.int64), right.astype(np.int64)
    bad = ~leaf & ~((left > index) & (left < n) & (right > index) & (right < n))
    if bad.any():
        i = first_index(bad)
        fail(where, f"{what} node {i} has children ({left[i]}, {right[i]}) outside ({i}, {n})")
    parents = np.bincount(np.concatenate([left[~leaf], right[~leaf]]), minlength=n)
    parents[0] += 1
    if (parents != 1).any():
        i = first_index(parents != 1)
        fail(where, f"{what} node {i} has {parents[i] - (i == 0)} parents; nodes must form a tree")


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


def check_tree(walk: Walk, tree: Any, where: str) -> None:
    what = "sklearn Tree"
    node_count, capacity = int(tree.node_count), int(tree.capacity)
    if not 1 <= node_count <= capacity:
        fail(where, f"{what} node_count {node_count} is outside [1, capacity {capacity}]")
    n_features, n_outputs, max_n_classes = int(tree.n_features), int(tree.n_outputs), int(tree.max_n_classes)
    if min(n_features, n_outputs, max_n_classes) < 1:
        fail(where, f"{what} has n_features {n_features}, n_outputs {n_outputs}, max_n_classes {max_n_classes}; all must be ≥ 1")
    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    if values.shape != (node_count, n_outputs, max_n_classes):
        fail(
            where,
            f"{what} value shape {values.shape} is not (node_count, n_outputs, max_n_classes) {(node_count, n_outputs, max_n_classes)}",
        )
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == -1
    if (leaf != (right == -1)).any():
        i = first_index(leaf != (right == -1))
        fail(where, f"{what} node {i} has one child ({left[i]}, {right[i]}); a leaf has both -1")
    _check_tree_links(where, what, left, right, leaf)
    bad = ~leaf & ((feature < 0) | (feature >= n_features))
    if bad.any():
        i = first_index(bad)
        fail(where, f"{what} node {i} splits on feature {feature[i]} outside [0, n_features {n_features})")
    depth = _depth(left.astype(np.int64), right.astype(np.int64), leaf)
    if depth > int(tree.max_depth):
        fail(where, f"{what} is {depth} deep but max_depth says {tree.max_depth}")


def check_decision_tree(walk: Walk, estimator: Any, where: str) -> None:
    from sklearn.tree._tree import Tree

    tree = vars(estimator).get("tree_")
    if tree is None:
        return
    if not isinstance(tree, Tree):
        fail(f"{where}.tree_", f"is a {type(tree).__name__}, not a sklearn Tree")
    walk.structure(tree, f"{where}.tree_")
    for attribute, expected in (("n_features_in_", "n_features"), ("n_outputs_", "n_outputs")):
        value = vars(estimator).get(attribute)
        if value is not None and int(value) != int(getattr(tree, expected)):
            fail(f"{where}.tree_", f"sklearn Tree {expected} {getattr(tree, expected)} differs from the estimator's {attribute} {value}")


def check_gradient_boosting(walk: Walk, estimator: Any, where: str) -> None:
    """predict_stages feeds every tree the X validated for estimators_[0, 0] and writes column k of an n_trees_per_iteration_ wide array."""
    members = vars(estimator).get("estimators_")
    if members is None:
        return
    members = checked_array(members, f"{where}.estimators_", "estimators_", 2)
    width = vars(estimator).get("n_trees_per_iteration_", members.shape[1])
    n_features = vars(estimator).get("n_features_in_")
    if members.shape[1] != int(width):
        fail(f"{where}.estimators_", f"{members.shape[1]} trees per stage but n_trees_per_iteration_ is {width}")
    for i, member in enumerate(members.ravel()):
        member_features = getattr(member, "n_features_in_", None)
        if n_features is not None and member_features != n_features:
            fail(f"{where}.estimators_[{i}]", f"stage tree has n_features_in_ {member_features}, the ensemble {n_features}")


def check_predictor(walk: Walk, predictor: Any, where: str) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    what = "HistGradientBoosting TreePredictor"
    nodes = checked_array(vars(predictor).get("nodes"), where, f"{what} nodes", 1)
    if nodes.dtype != PREDICTOR_RECORD_DTYPE or len(nodes) == 0:
        fail(where, f"{what} nodes are empty or not PREDICTOR_RECORD_DTYPE")
    leaf = nodes["is_leaf"] != 0
    _check_tree_links(where, what, nodes["left"], nodes["right"], leaf)
    if (~leaf & (nodes["feature_idx"] < 0)).any():
        fail(where, f"{what} node {first_index(~leaf & (nodes['feature_idx'] < 0))} splits on a negative feature index")
    rows = []
    for name in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
        bitsets = checked_array(vars(predictor).get(name), where, f"{what} {name}", 2)
        if bitsets.shape[1] != 8 or bitsets.dtype != np.uint32:
            fail(where, f"{what} {name} has shape {bitsets.shape} and dtype {bitsets.dtype}, not (n, 8) uint32")
        rows.append(bitsets.shape[0])
    categorical = ~leaf & (nodes["is_categorical"] != 0)
    bad = categorical & (nodes["bitset_idx"].astype(np.int64) >= min(rows))
    if bad.any():
        i = first_index(bad)
        fail(where, f"{what} node {i} uses bitset {nodes['bitset_idx'][i]} outside [0, {min(rows)})")


def check_hist_gradient_boosting(walk: Walk, estimator: Any, where: str) -> None:
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
                fail(path, f"is a {type(predictor).__name__}, not a TreePredictor")
            walk.structure(predictor, path)
            nodes = vars(predictor)["nodes"]
            split = nodes["is_leaf"] == 0
            features = nodes["feature_idx"]
            bad = split & (features >= width)
            if bad.any():
                j = first_index(bad)
                fail(path, f"TreePredictor node {j} splits on feature {features[j]} outside [0, {width})")
            cat_features = features[split & (nodes["is_categorical"] != 0)]
            if cat_features.size and ((cat_features >= len(categorical)).any() or not categorical[cat_features].all()):
                fail(path, "TreePredictor has a categorical split on a feature the bin mapper does not mark categorical")


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
        fail(f"{where}._preprocessor", f"expected a ColumnTransformer, found {type(preprocessor).__name__}")
    width = 0
    for name, transformer, columns in vars(preprocessor).get("transformers_", []):
        if isinstance(transformer, str) and transformer == "drop":
            continue
        identity = isinstance(transformer, FunctionTransformer) and _unwrap(vars(transformer).get("func")) in (None, check_array)
        if not (identity or isinstance(transformer, OrdinalEncoder) or (isinstance(transformer, str) and transformer == "passthrough")):
            fail(f"{where}._preprocessor", f"transformer {name!r} is a {type(transformer).__name__}, which may change X's width")
        width += _column_count(columns, n_features, f"{where}._preprocessor")
    if width != n_features:
        fail(f"{where}._preprocessor", f"outputs {width} columns but the estimator expects {n_features}")
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
            fail(where, f"a boolean column mask has shape {selection.shape}, not ({n_features},)")
        return int(selection.sum())
    if selection.ndim == 1 and selection.dtype.kind in "iuUO":
        return len(selection)
    fail(where, f"unsupported column selection of type {type(columns).__name__}")
    return 0
