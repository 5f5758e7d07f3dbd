"""Structural checks of an XGBoost JSON model, in Python, before XGBoost's loader reads it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.summary import INT32_MAX, MAX_CLASSES, Malformed, Summary, need
from sealserve.trust.boosters.ubjson import read_ubjson

# Objectives whose booster.predict is a probability per class (binary: one column for the positive class).
XGB_PROBA_OBJECTIVES = frozenset({"binary:logistic", "multi:softprob"})
XGB_CLASSIFIER_OBJECTIVES = XGB_PROBA_OBJECTIVES | {"multi:softmax"}
XGB_FEATURE_TYPES = frozenset({"float", "int", "i", "q", "c"})
XGB_TREE_ARRAYS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "split_conditions",
    "default_left",
    "base_weights",
    "loss_changes",
    "sum_hessian",
)
XGB_MAX_CATEGORY = 1 << 24  # categories travel as float32, exact only below 2**24
XGB_FLOAT_CATEGORY_TYPES = frozenset({7, 8})  # XGBoost's JSON value kinds: f32, f64, then i8, u8, … u64 up to 16
XGB_CATEGORY_TYPES = XGB_FLOAT_CATEGORY_TYPES | frozenset(range(9, 17))
XGB_ROOT_PARENT = INT32_MAX


def _obj(value: Any, what: str) -> dict[str, Any]:
    need(isinstance(value, dict), f"{what} is not an object")
    return dict(value)


def _int_list(value: Any, what: str, lo: int = -INT32_MAX - 1, hi: int = INT32_MAX) -> list[int]:
    need(isinstance(value, list), f"{what} is not a list")
    need(all(type(v) is int and lo <= v <= hi for v in value), f"{what} has a value that is not an integer in [{lo}, {hi}]")
    return list(value)


def _num_list(value: Any, what: str, length: int) -> None:
    need(isinstance(value, list) and len(value) == length, f"{what} does not have {length} entries")
    need(all(type(v) in (int, float) for v in value), f"{what} has a value that is not a number")


def _int_text(value: Any, what: str, lo: int = 0, hi: int = INT32_MAX) -> int:
    need(isinstance(value, str | int) and re.fullmatch(r"-?\d{1,10}", str(value)) is not None, f"{what} is not an integer")
    number = int(value)
    need(lo <= number <= hi, f"{what} = {number} is outside [{lo}, {hi}]")
    return number


def check_xgboost_json(raw: bytes, name: str) -> Summary:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BundleFormatError(f"{name} is not XGBoost JSON (empty, truncated or not JSON)") from None
    try:
        return xgboost_summary(document)
    except Malformed as exc:
        raise BundleFormatError(f"{name} is not a well-formed XGBoost model: {exc}") from None


def ubjson_as_json(raw: bytes, name: str) -> bytes:
    """An XGBoost UBJSON model (`.ubj`) read by sealserve's own bounded reader, checked as its JSON form is, and
    written as that JSON: XGBoost's loader then reads only what was checked, in the format the bundle keeps."""
    try:
        document = read_ubjson(raw)
    except Malformed as exc:
        raise BundleFormatError(f"{name} is not XGBoost UBJSON: {exc}") from None
    try:
        xgboost_summary(document)
    except Malformed as exc:
        raise BundleFormatError(f"{name} is not a well-formed XGBoost model: {exc}") from None
    return json.dumps(document).encode("utf-8")


def xgboost_summary(document: Any) -> Summary:
    learner = _obj(_obj(document, "the document").get("learner"), "learner")
    version = _obj(document, "the document").get("version")
    need(isinstance(version, list) and len(version) == 3 and all(type(v) is int for v in version), "version is missing")
    params = _obj(learner.get("learner_model_param"), "learner_model_param")
    n_features = _int_text(params.get("num_feature"), "num_feature")
    n_class = _int_text(params.get("num_class"), "num_class", hi=MAX_CLASSES)
    n_target = _int_text(params.get("num_target", "1"), "num_target", lo=1, hi=MAX_CLASSES)
    objective = _obj(learner.get("objective"), "objective").get("name")
    if not isinstance(objective, str):
        raise Malformed("objective name is missing")
    _check_feature_info(learner, n_features)
    groups = max(n_class, n_target, 1)
    _check_gradient_booster(_obj(learner.get("gradient_booster"), "gradient_booster"), n_features, groups)
    attributes = _obj(learner.get("attributes", {}), "attributes")
    estimator_type = None
    if "scikit_learn" in attributes:
        try:
            meta = json.loads(attributes["scikit_learn"])
        except (TypeError, ValueError, RecursionError):
            raise Malformed("the scikit_learn attribute is not JSON") from None
        estimator_type = _obj(meta, "the scikit_learn attribute").get("_estimator_type")
    is_classifier = objective in XGB_PROBA_OBJECTIVES and n_target == 1
    n_classes = max(n_class, 2) if objective in XGB_CLASSIFIER_OBJECTIVES else 0
    return Summary(objective, n_features, n_classes, is_classifier, estimator_type if isinstance(estimator_type, str) else None)


def _check_feature_info(learner: dict[str, Any], n_features: int) -> None:
    names = learner.get("feature_names", [])
    types = learner.get("feature_types", [])
    need(isinstance(names, list) and all(isinstance(n, str) for n in names), "feature_names is not a list of strings")
    need(isinstance(types, list) and all(t in XGB_FEATURE_TYPES for t in types), "feature_types has an unknown type")
    need(len(names) in (0, n_features) and len(types) in (0, n_features), "feature_names/feature_types do not match num_feature")


def _check_gradient_booster(booster: dict[str, Any], n_features: int, groups: int) -> None:
    kind = booster.get("name")
    if kind == "gblinear":
        weights = _obj(booster.get("model"), "gblinear model").get("weights")
        _num_list(weights, "gblinear weights", (n_features + 1) * groups)
        return
    need(kind in ("gbtree", "dart"), f"unknown booster {kind!r}")
    inner = _obj(booster.get("gbtree"), "dart gbtree") if kind == "dart" else booster
    model = _obj(inner.get("model"), "gbtree model")
    trees = model.get("trees")
    if not isinstance(trees, list):
        raise Malformed("trees is not a list")
    n_trees = len(trees)
    tree_param = _obj(model.get("gbtree_model_param"), "gbtree_model_param")
    need(_int_text(tree_param.get("num_trees"), "num_trees") == n_trees, "num_trees does not match the trees")
    _int_text(tree_param.get("num_parallel_tree", "1"), "num_parallel_tree", lo=1)
    need(len(_int_list(model.get("tree_info"), "tree_info", 0, groups - 1)) == n_trees, "tree_info does not match the trees")
    indptr = _int_list(model.get("iteration_indptr", [0, n_trees]), "iteration_indptr", 0, n_trees)
    need(bool(indptr) and indptr[0] == 0 and indptr[-1] == n_trees and indptr == sorted(indptr), "iteration_indptr is inconsistent")
    if kind == "dart":
        _num_list(booster.get("weight_drop"), "dart weight_drop", n_trees)
    if "cats" in model:
        _check_categories(_obj(model["cats"], "cats"), n_features)
    for index, tree in enumerate(trees):
        try:
            need(_obj(tree, "tree").get("id") == index, "its id is not its position (XGBoost indexes trees by id)")
            _check_xgboost_tree(_obj(tree, "tree"), n_features)
        except Malformed as exc:
            raise Malformed(f"tree {index}: {exc}") from None


def _check_xgboost_tree(tree: dict[str, Any], n_features: int) -> None:
    param = _obj(tree.get("tree_param"), "tree_param")
    n_nodes = _int_text(param.get("num_nodes"), "num_nodes", lo=1)
    need(_int_text(param.get("size_leaf_vector", "1"), "size_leaf_vector") <= 1, "vector-leaf (multi_output_tree) trees are not supported")
    need(_int_text(param.get("num_feature"), "tree num_feature") == n_features, "tree num_feature differs from the model's")
    for key in XGB_TREE_ARRAYS:
        _num_list(tree.get(key), key, n_nodes)
    left = _int_list(tree["left_children"], "left_children", -1, n_nodes - 1)
    right = _int_list(tree["right_children"], "right_children", -1, n_nodes - 1)
    split_index = _int_list(tree["split_indices"], "split_indices", 0, (1 << 32) - 1)
    split_type = _int_list(tree.get("split_type", [0] * n_nodes), "split_type", 0, 1)
    need(len(split_type) == n_nodes, f"split_type does not have {n_nodes} entries")
    parents = _int_list(tree["parents"], "parents", 0, INT32_MAX)
    need(parents[0] == XGB_ROOT_PARENT, "the root has a parent")
    for node in _walk(left, right):
        if left[node] != -1:
            need(split_index[node] < n_features, f"node {node} splits on feature {split_index[node]} of {n_features}")
            need(parents[left[node]] == node and parents[right[node]] == node, f"the children of node {node} name another parent")
    need(all(p < n_nodes for p in parents[1:]), "a parent index is out of range")
    if "split_type" in tree:
        _check_categorical_splits(tree, split_type, n_nodes)


def _walk(left: list[int], right: list[int]) -> Iterator[int]:
    """Visit every node reachable from the root once; a node reached twice is a cycle or a shared child."""
    seen: set[int] = set()
    stack = [0]
    while stack:
        node = stack.pop()
        need(node not in seen, f"node {node} is reached twice")
        seen.add(node)
        yield node
        if left[node] == -1:
            need(right[node] == -1, f"node {node} has only one child")
            continue
        need(left[node] > 0 and right[node] > 0, f"node {node} points back at the root")
        stack.extend((left[node], right[node]))


def _check_categorical_splits(tree: dict[str, Any], split_type: list[int], n_nodes: int) -> None:
    categories = _int_list(tree.get("categories", []), "categories", 0, XGB_MAX_CATEGORY - 1)
    nodes = _int_list(tree.get("categories_nodes", []), "categories_nodes", 0, n_nodes - 1)
    segments = _int_list(tree.get("categories_segments", []), "categories_segments", 0, len(categories))
    sizes = _int_list(tree.get("categories_sizes", []), "categories_sizes", 1, len(categories))
    need(len(nodes) == len(segments) == len(sizes), "categories_nodes/segments/sizes differ in length")
    need(nodes == [i for i, t in enumerate(split_type) if t == 1], "categories_nodes does not match split_type")
    need(all(s + n <= len(categories) for s, n in zip(segments, sizes, strict=True)), "a category segment runs past categories")


def _check_categories(cats: dict[str, Any], n_features: int) -> None:
    encodings = cats.get("enc")
    need(isinstance(encodings, list) and len(encodings) in (0, n_features), "cats.enc does not match num_feature")
    segments = _int_list(cats.get("feature_segments", []), "cats.feature_segments", 0)
    order = _int_list(cats.get("sorted_idx", []), "cats.sorted_idx", 0)
    if not encodings:
        need(len(segments) <= 1 and not order, "cats has segments but no encodings")
        return
    counts = [_category_count(_obj(column, "cats.enc entry")) for column in encodings]
    need(len(segments) == len(counts) + 1 and segments[0] == 0, "cats.feature_segments does not match cats.enc")
    need(all(b - a == n for a, b, n in zip(segments, segments[1:], counts, strict=False)), "cats.feature_segments sizes are wrong")
    need(len(order) == segments[-1], "cats.sorted_idx has the wrong length")
    for start, count in zip(segments, counts, strict=False):
        need(sorted(order[start : start + count]) == list(range(count)), "cats.sorted_idx is not a permutation per feature")


def _category_count(column: dict[str, Any]) -> int:
    if "offsets" in column:
        values = _int_list(column.get("values"), "cats string values", -128, 255)
        offsets = _int_list(column["offsets"], "cats offsets", 0, len(values))
        if not offsets:
            need(not values, "cats string values without offsets")
            return 0
        need(offsets[0] == 0 and offsets[-1] == len(values) and offsets == sorted(offsets), "cats offsets are inconsistent")
        return len(offsets) - 1
    kind = column.get("type")
    need(kind in XGB_CATEGORY_TYPES, "cats entry has an unsupported category type")
    numbers = column.get("values")
    if not isinstance(numbers, list):
        raise Malformed("cats values is not a list")
    if kind in XGB_FLOAT_CATEGORY_TYPES:
        _num_list(numbers, "cats values", len(numbers))
        return len(numbers)
    return len(_int_list(numbers, "cats values", -(1 << 63), (1 << 64) - 1))
