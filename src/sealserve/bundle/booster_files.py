"""Structural checks of XGBoost JSON and LightGBM text models, in Python, before either library's loader reads them.

Both native loaders abort or segfault the process on some malformed files (an empty file, a truncated LightGBM
model, a child index out of range), so nothing reaches them that these checks have not walked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sealserve.errors import BundleFormatError

Library = Literal["xgboost", "lightgbm"]

# Objectives whose booster.predict is a probability per class (binary: one column for the positive class).
XGB_PROBA_OBJECTIVES = frozenset({"binary:logistic", "multi:softprob"})
XGB_CLASSIFIER_OBJECTIVES = XGB_PROBA_OBJECTIVES | {"multi:softmax"}
LGB_CLASSIFIER_OBJECTIVES = frozenset({"binary", "multiclass", "multiclassova"})


@dataclass(frozen=True)
class Summary:
    objective: str
    n_features: int
    n_classes: int
    is_classifier: bool
    estimator_type: str | None = None


def check_bytes(raw: bytes, library: Library, name: str) -> Summary:
    if library == "xgboost":
        if raw.startswith(b"tree\n"):
            raise BundleFormatError(f"{name} is a LightGBM text model, not XGBoost JSON")
        return _check_xgboost_json(raw, name)
    if raw.lstrip().startswith(b"{"):
        raise BundleFormatError(f"{name} looks like XGBoost JSON, not a LightGBM text model")
    return _check_lightgbm_text(raw, name)


# --------------------------------------------------------------------------------------------- XGBoost JSON checks

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
INT32_MAX = (1 << 31) - 1
XGB_ROOT_PARENT = INT32_MAX
MAX_CLASSES = 1 << 16  # far beyond any real classifier; a corrupt count would size per-row output buffers


class Malformed(Exception):
    """Raised inside the checks; the caller names the file."""


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise Malformed(message)


def _obj(value: Any, what: str) -> dict[str, Any]:
    _need(isinstance(value, dict), f"{what} is not an object")
    return dict(value)


def _int_list(value: Any, what: str, lo: int = -INT32_MAX - 1, hi: int = INT32_MAX) -> list[int]:
    _need(isinstance(value, list), f"{what} is not a list")
    _need(all(type(v) is int and lo <= v <= hi for v in value), f"{what} has a value that is not an integer in [{lo}, {hi}]")
    return list(value)


def _num_list(value: Any, what: str, length: int) -> None:
    _need(isinstance(value, list) and len(value) == length, f"{what} does not have {length} entries")
    _need(all(type(v) in (int, float) for v in value), f"{what} has a value that is not a number")


def _int_text(value: Any, what: str, lo: int = 0, hi: int = INT32_MAX) -> int:
    _need(isinstance(value, str | int) and re.fullmatch(r"-?\d{1,10}", str(value)) is not None, f"{what} is not an integer")
    number = int(value)
    _need(lo <= number <= hi, f"{what} = {number} is outside [{lo}, {hi}]")
    return number


def _check_xgboost_json(raw: bytes, name: str) -> Summary:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BundleFormatError(f"{name} is not XGBoost JSON (empty, truncated or not JSON)") from None
    try:
        return xgboost_summary(document)
    except Malformed as exc:
        raise BundleFormatError(f"{name} is not a well-formed XGBoost model: {exc}") from None


def xgboost_summary(document: Any) -> Summary:
    learner = _obj(_obj(document, "the document").get("learner"), "learner")
    version = _obj(document, "the document").get("version")
    _need(isinstance(version, list) and len(version) == 3 and all(type(v) is int for v in version), "version is missing")
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
    _need(isinstance(names, list) and all(isinstance(n, str) for n in names), "feature_names is not a list of strings")
    _need(isinstance(types, list) and all(t in XGB_FEATURE_TYPES for t in types), "feature_types has an unknown type")
    _need(len(names) in (0, n_features) and len(types) in (0, n_features), "feature_names/feature_types do not match num_feature")


def _check_gradient_booster(booster: dict[str, Any], n_features: int, groups: int) -> None:
    kind = booster.get("name")
    if kind == "gblinear":
        weights = _obj(booster.get("model"), "gblinear model").get("weights")
        _num_list(weights, "gblinear weights", (n_features + 1) * groups)
        return
    _need(kind in ("gbtree", "dart"), f"unknown booster {kind!r}")
    inner = _obj(booster.get("gbtree"), "dart gbtree") if kind == "dart" else booster
    model = _obj(inner.get("model"), "gbtree model")
    trees = model.get("trees")
    if not isinstance(trees, list):
        raise Malformed("trees is not a list")
    n_trees = len(trees)
    tree_param = _obj(model.get("gbtree_model_param"), "gbtree_model_param")
    _need(_int_text(tree_param.get("num_trees"), "num_trees") == n_trees, "num_trees does not match the trees")
    _int_text(tree_param.get("num_parallel_tree", "1"), "num_parallel_tree", lo=1)
    _need(len(_int_list(model.get("tree_info"), "tree_info", 0, groups - 1)) == n_trees, "tree_info does not match the trees")
    indptr = _int_list(model.get("iteration_indptr", [0, n_trees]), "iteration_indptr", 0, n_trees)
    _need(bool(indptr) and indptr[0] == 0 and indptr[-1] == n_trees and indptr == sorted(indptr), "iteration_indptr is inconsistent")
    if kind == "dart":
        _num_list(booster.get("weight_drop"), "dart weight_drop", n_trees)
    if "cats" in model:
        _check_categories(_obj(model["cats"], "cats"), n_features)
    for index, tree in enumerate(trees):
        try:
            _need(_obj(tree, "tree").get("id") == index, "its id is not its position (XGBoost indexes trees by id)")
            _check_xgboost_tree(_obj(tree, "tree"), n_features)
        except Malformed as exc:
            raise Malformed(f"tree {index}: {exc}") from None


def _check_xgboost_tree(tree: dict[str, Any], n_features: int) -> None:
    param = _obj(tree.get("tree_param"), "tree_param")
    n_nodes = _int_text(param.get("num_nodes"), "num_nodes", lo=1)
    _need(_int_text(param.get("size_leaf_vector", "1"), "size_leaf_vector") <= 1, "vector-leaf (multi_output_tree) trees are not supported")
    _need(_int_text(param.get("num_feature"), "tree num_feature") == n_features, "tree num_feature differs from the model's")
    for key in XGB_TREE_ARRAYS:
        _num_list(tree.get(key), key, n_nodes)
    left = _int_list(tree["left_children"], "left_children", -1, n_nodes - 1)
    right = _int_list(tree["right_children"], "right_children", -1, n_nodes - 1)
    split_index = _int_list(tree["split_indices"], "split_indices", 0, (1 << 32) - 1)
    split_type = _int_list(tree.get("split_type", [0] * n_nodes), "split_type", 0, 1)
    _need(len(split_type) == n_nodes, f"split_type does not have {n_nodes} entries")
    parents = _int_list(tree["parents"], "parents", 0, INT32_MAX)
    _need(parents[0] == XGB_ROOT_PARENT, "the root has a parent")
    for node in _walk(left, right):
        if left[node] != -1:
            _need(split_index[node] < n_features, f"node {node} splits on feature {split_index[node]} of {n_features}")
            _need(parents[left[node]] == node and parents[right[node]] == node, f"the children of node {node} name another parent")
    _need(all(p < n_nodes for p in parents[1:]), "a parent index is out of range")
    if "split_type" in tree:
        _check_categorical_splits(tree, split_type, n_nodes)


def _walk(left: list[int], right: list[int]) -> Iterator[int]:
    """Visit every node reachable from the root once; a node reached twice is a cycle or a shared child."""
    seen: set[int] = set()
    stack = [0]
    while stack:
        node = stack.pop()
        _need(node not in seen, f"node {node} is reached twice")
        seen.add(node)
        yield node
        if left[node] == -1:
            _need(right[node] == -1, f"node {node} has only one child")
            continue
        _need(left[node] > 0 and right[node] > 0, f"node {node} points back at the root")
        stack.extend((left[node], right[node]))


def _check_categorical_splits(tree: dict[str, Any], split_type: list[int], n_nodes: int) -> None:
    categories = _int_list(tree.get("categories", []), "categories", 0, XGB_MAX_CATEGORY - 1)
    nodes = _int_list(tree.get("categories_nodes", []), "categories_nodes", 0, n_nodes - 1)
    segments = _int_list(tree.get("categories_segments", []), "categories_segments", 0, len(categories))
    sizes = _int_list(tree.get("categories_sizes", []), "categories_sizes", 1, len(categories))
    _need(len(nodes) == len(segments) == len(sizes), "categories_nodes/segments/sizes differ in length")
    _need(nodes == [i for i, t in enumerate(split_type) if t == 1], "categories_nodes does not match split_type")
    _need(all(s + n <= len(categories) for s, n in zip(segments, sizes, strict=True)), "a category segment runs past categories")


def _check_categories(cats: dict[str, Any], n_features: int) -> None:
    encodings = cats.get("enc")
    _need(isinstance(encodings, list) and len(encodings) in (0, n_features), "cats.enc does not match num_feature")
    segments = _int_list(cats.get("feature_segments", []), "cats.feature_segments", 0)
    order = _int_list(cats.get("sorted_idx", []), "cats.sorted_idx", 0)
    if not encodings:
        _need(len(segments) <= 1 and not order, "cats has segments but no encodings")
        return
    counts = [_category_count(_obj(column, "cats.enc entry")) for column in encodings]
    _need(len(segments) == len(counts) + 1 and segments[0] == 0, "cats.feature_segments does not match cats.enc")
    _need(all(b - a == n for a, b, n in zip(segments, segments[1:], counts, strict=False)), "cats.feature_segments sizes are wrong")
    _need(len(order) == segments[-1], "cats.sorted_idx has the wrong length")
    for start, count in zip(segments, counts, strict=False):
        _need(sorted(order[start : start + count]) == list(range(count)), "cats.sorted_idx is not a permutation per feature")


def _category_count(column: dict[str, Any]) -> int:
    if "offsets" in column:
        values = _int_list(column.get("values"), "cats string values", -128, 255)
        offsets = _int_list(column["offsets"], "cats offsets", 0, len(values))
        if not offsets:
            _need(not values, "cats string values without offsets")
            return 0
        _need(offsets[0] == 0 and offsets[-1] == len(values) and offsets == sorted(offsets), "cats offsets are inconsistent")
        return len(offsets) - 1
    kind = column.get("type")
    _need(kind in XGB_CATEGORY_TYPES, "cats entry has an unsupported category type")
    numbers = column.get("values")
    if not isinstance(numbers, list):
        raise Malformed("cats values is not a list")
    if kind in XGB_FLOAT_CATEGORY_TYPES:
        _num_list(numbers, "cats values", len(numbers))
        return len(numbers)
    return len(_int_list(numbers, "cats values", -(1 << 63), (1 << 64) - 1))


# ------------------------------------------------------------------------------------------- LightGBM text checks

LGB_NUMBER = re.compile(r"-?(?:inf|nan|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")
LGB_INT = re.compile(r"-?\d{1,10}")
LGB_PARAM_LINE = re.compile(r"\[[A-Za-z0-9_]+: .*\]")
LGB_TREE_MAX_LINES = 22  # LightGBM's Tree parser reads at most this many key=value lines
LGB_MISSING_TYPES = (0, 1, 2)


def _check_lightgbm_text(raw: bytes, name: str) -> Summary:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleFormatError(f"{name} is not a LightGBM text model (not UTF-8)") from None
    if not text.startswith("tree\n"):
        raise BundleFormatError(f"{name} is not a LightGBM text model (no 'tree' header)")
    try:
        _need("\x00" not in text and "\r" not in text, "the file contains NUL or carriage-return characters")
        return lightgbm_summary(raw)
    except Malformed as exc:
        raise BundleFormatError(f"{name} is not a well-formed LightGBM model: {exc}") from None


def lightgbm_summary(raw: bytes) -> Summary:
    trees_at = raw.find(b"\nTree=")
    _need(trees_at >= 0, "no trees (empty or truncated file)")
    header = _lightgbm_header(raw[: trees_at + 1].decode("utf-8"))
    n_class = _lgb_int(header, "num_class", 1, MAX_CLASSES)
    _need(_lgb_int(header, "num_tree_per_iteration", 1) == n_class, "num_tree_per_iteration differs from num_class")
    _lgb_int(header, "label_index", -INT32_MAX - 1)
    n_features = _lgb_int(header, "max_feature_idx", 0) + 1
    _need(header.get("version", "").startswith("v"), "version is missing")
    for key in ("feature_names", "feature_infos"):
        _need(key in header and len(_tokens(header[key])) == n_features, f"{key} does not have {n_features} entries")
    if "monotone_constraints" in header:
        _need(len(_ints(header["monotone_constraints"], "monotone_constraints", -128, 127)) == n_features, "wrong monotone_constraints")
    sizes = _ints(header.get("tree_sizes", ""), "tree_sizes", 0, INT32_MAX)
    _need(len(sizes) > 0 and len(sizes) % n_class == 0, "tree_sizes is missing or not a whole number of iterations")
    body = raw[trees_at + 1 :]
    _need(sum(sizes) <= len(body), "the trees run past the end of the file (truncated)")
    offset = 0
    for index, size in enumerate(sizes):
        try:
            _check_lightgbm_tree(body[offset : offset + size].decode("utf-8"), index, n_features)
        except UnicodeDecodeError:
            raise Malformed(f"tree {index} is not text") from None
        offset += size
    _check_lightgbm_tail(body[offset:].decode("utf-8"))
    objective, *settings = header.get("objective", "").split(" ")
    declared = [item.removeprefix("num_class:") for item in settings if item.startswith("num_class:")]
    _need(declared in ([], [str(n_class)]), "the objective's num_class differs from the model's")
    is_classifier = objective in LGB_CLASSIFIER_OBJECTIVES
    n_classes = (2 if n_class == 1 else n_class) if is_classifier else 0
    return Summary(objective, n_features, n_classes, is_classifier)


def _lightgbm_header(text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, _, value = line.partition("=")
        _need("=" not in value or key in ("feature_names", "monotone_constraints"), f"bad header line {line[:60]!r}")
        _need(key not in header, f"header key {key!r} appears twice")
        header[key] = value
    return header


def _lgb_int(fields: dict[str, str], key: str, lo: int, hi: int = INT32_MAX) -> int:
    value = fields.get(key)
    _need(value is not None and LGB_INT.fullmatch(value) is not None, f"{key} is missing or not an integer")
    number = int(str(value))
    _need(lo <= number <= hi, f"{key} = {number} is outside [{lo}, {hi}]")
    return number


def _tokens(value: str) -> list[str]:
    return [token for token in value.split(" ") if token]


def _ints(value: str, key: str, lo: int, hi: int) -> list[int]:
    tokens = _tokens(value)
    _need(all(LGB_INT.fullmatch(t) for t in tokens), f"{key} has a value that is not an integer")
    numbers = [int(t) for t in tokens]
    _need(all(lo <= n <= hi for n in numbers), f"{key} has a value outside [{lo}, {hi}]")
    return numbers


def _numbers(value: str, key: str) -> list[float]:
    tokens = _tokens(value)
    _need(all(LGB_NUMBER.fullmatch(t) for t in tokens), f"{key} has a value that is not a number")
    return [float(t) for t in tokens]


def _check_lightgbm_tree(block: str, index: int, n_features: int) -> None:
    head, blank, rest = block.partition("\n\n")
    _need(bool(blank) and not rest.strip("\n"), f"tree {index} is not terminated by a blank line")
    lines = head.split("\n")
    _need(lines[0] == f"Tree={index}", f"tree {index} does not start with 'Tree={index}'")
    body = lines[1:]
    _need(0 < len(body) <= LGB_TREE_MAX_LINES and all("=" in line for line in body), f"tree {index} has malformed lines")
    fields: dict[str, str] = {}
    for line in body:
        key, _, value = line.partition("=")
        _need(key not in fields, f"tree {index} repeats {key!r}")
        fields[key] = value
    try:
        _check_lightgbm_tree_fields(fields, n_features)
    except Malformed as exc:
        raise Malformed(f"tree {index}: {exc}") from None


def _check_lightgbm_tree_fields(fields: dict[str, str], n_features: int) -> None:
    n_leaves = _lgb_int(fields, "num_leaves", 1)
    n_cat = _lgb_int(fields, "num_cat", 0)
    n_inner = n_leaves - 1

    def exact(key: str, length: int, kind: str = "number", lo: int = -INT32_MAX - 1, hi: int = INT32_MAX) -> list[Any]:
        values = _ints(fields[key], key, lo, hi) if kind == "int" else _numbers(fields[key], key)
        _need(len(values) == length, f"{key} does not have {length} entries")
        return values

    _need("leaf_value" in fields, "leaf_value is missing")
    exact("leaf_value", n_leaves)
    if "shrinkage" in fields:
        exact("shrinkage", 1)
    is_linear = fields.get("is_linear", "0")
    _need(is_linear in ("0", "1"), "is_linear is not 0 or 1")
    if n_leaves == 1 and is_linear == "0":
        return
    for key in ("left_child", "right_child", "split_feature", "threshold"):
        _need(key in fields, f"{key} is missing")
    left = exact("left_child", n_inner, "int", -n_leaves, n_inner - 1)
    right = exact("right_child", n_inner, "int", -n_leaves, n_inner - 1)
    exact("split_feature", n_inner, "int", 0, n_features - 1)
    thresholds = exact("threshold", n_inner)
    decisions = exact("decision_type", n_inner, "int", -128, 127) if "decision_type" in fields else [0] * n_inner
    for key, length in (("split_gain", n_inner), ("internal_value", n_inner), ("internal_weight", n_inner), ("leaf_weight", n_leaves)):
        if key in fields:
            exact(key, length)
    for key, length in (("internal_count", n_inner), ("leaf_count", n_leaves)):
        if key in fields:
            exact(key, length, "int")
    if n_inner:
        _check_lightgbm_nodes(left, right, n_leaves)
    cat_boundaries: list[int] = [0]
    if n_cat > 0:
        _need("cat_boundaries" in fields and "cat_threshold" in fields, "cat_boundaries or cat_threshold is missing")
        cat_boundaries = exact("cat_boundaries", n_cat + 1, "int", 0)
        n_words = len(exact("cat_threshold", cat_boundaries[-1], "int", 0, (1 << 32) - 1))
        _need(cat_boundaries[0] == 0 and cat_boundaries == sorted(cat_boundaries) and cat_boundaries[-1] == n_words, "bad cat_boundaries")
    for node, (decision, threshold) in enumerate(zip(decisions, thresholds, strict=True)):
        _need((decision >> 2) & 3 in LGB_MISSING_TYPES, f"node {node} has an unknown missing-value type")
        if decision & 1:
            _need(threshold.is_integer() and 0 <= threshold < n_cat, f"node {node} points at a categorical split that does not exist")
    if is_linear == "1":
        _check_linear_leaves(fields, n_leaves, n_features)


def _check_lightgbm_nodes(left: list[int], right: list[int], n_leaves: int) -> None:
    """Every internal node and every leaf is reached exactly once from the root: a tree, without cycles."""
    seen_inner: set[int] = set()
    seen_leaves: set[int] = set()
    stack = [0]
    while stack:
        node = stack.pop()
        _need(node not in seen_inner, f"node {node} is reached twice")
        seen_inner.add(node)
        for child in (left[node], right[node]):
            if child < 0:
                _need(~child not in seen_leaves, f"leaf {~child} is reached twice")
                seen_leaves.add(~child)
            else:
                stack.append(child)
    _need(len(seen_leaves) == n_leaves and len(seen_inner) == n_leaves - 1, "some nodes are unreachable")


def _check_linear_leaves(fields: dict[str, str], n_leaves: int, n_features: int) -> None:
    for key in ("leaf_const", "num_features", "leaf_features", "leaf_coeff"):
        _need(key in fields, f"linear tree without {key}")
    _need(len(_numbers(fields["leaf_const"], "leaf_const")) == n_leaves, "leaf_const has the wrong length")
    counts = _ints(fields["num_features"], "num_features", 0, n_features)
    _need(len(counts) == n_leaves, "num_features has the wrong length")
    _need(len(_ints(fields["leaf_features"], "leaf_features", 0, n_features - 1)) == sum(counts), "leaf_features has the wrong length")
    _need(len(_numbers(fields["leaf_coeff"], "leaf_coeff")) == sum(counts), "leaf_coeff has the wrong length")


def _check_lightgbm_tail(tail: str) -> None:
    """After the trees: parameters LightGBM turns into JSON in C++, then the pandas categories Python reads as JSON."""
    lines = tail.split("\n")
    _need(lines[0] == "end of trees", "'end of trees' is missing (truncated file)")
    if "parameters:" in lines:
        start = lines.index("parameters:") + 1
        _need("end of parameters" in lines[start:], "'end of parameters' is missing")
        end = lines.index("end of parameters", start)
        _need(all(not line or LGB_PARAM_LINE.fullmatch(line) for line in lines[start:end]), "a parameter line is malformed")
    _need(tail.endswith("\n"), "the file does not end with a newline (truncated file)")
    last = tail.rstrip("\n").rsplit("\n", 1)[-1]
    _need(last.startswith("pandas_categorical:"), "the final pandas_categorical line is missing (truncated file)")
    try:
        categories = json.loads(last.removeprefix("pandas_categorical:"))
    except (ValueError, RecursionError):
        raise Malformed("pandas_categorical is not JSON") from None
    scalar = (str, int, float, bool)
    _need(
        categories is None
        or (isinstance(categories, list) and all(isinstance(c, list) and all(isinstance(v, scalar) for v in c) for c in categories)),
        "pandas_categorical is not a list of category lists",
    )
