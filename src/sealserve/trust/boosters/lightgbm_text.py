"""Structural checks of a LightGBM text model, in Python, before LightGBM's loader reads it."""

from __future__ import annotations

import json
import re
from typing import Any

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.summary import INT32_MAX, MAX_CLASSES, Malformed, Summary, need

LGB_CLASSIFIER_OBJECTIVES = frozenset({"binary", "multiclass", "multiclassova"})
LGB_NUMBER = re.compile(r"-?(?:inf|nan|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")
LGB_INT = re.compile(r"-?\d{1,10}")
LGB_PARAM_LINE = re.compile(r"\[[A-Za-z0-9_]+: .*\]")
LGB_TREE_MAX_LINES = 22  # LightGBM's Tree parser reads at most this many key=value lines
LGB_MISSING_TYPES = (0, 1, 2)


def check_lightgbm_text(raw: bytes, name: str) -> Summary:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleFormatError(f"{name} is not a LightGBM text model (not UTF-8)") from None
    if not text.startswith("tree\n"):
        raise BundleFormatError(f"{name} is not a LightGBM text model (no 'tree' header)")
    try:
        need("\x00" not in text and "\r" not in text, "the file contains NUL or carriage-return characters")
        return lightgbm_summary(raw)
    except Malformed as exc:
        raise BundleFormatError(f"{name} is not a well-formed LightGBM model: {exc}") from None


def lightgbm_summary(raw: bytes) -> Summary:
    trees_at = raw.find(b"\nTree=")
    need(trees_at >= 0, "no trees (empty or truncated file)")
    header = _lightgbm_header(raw[: trees_at + 1].decode("utf-8"))
    n_class = _lgb_int(header, "num_class", 1, MAX_CLASSES)
    need(_lgb_int(header, "num_tree_per_iteration", 1) == n_class, "num_tree_per_iteration differs from num_class")
    _lgb_int(header, "label_index", -INT32_MAX - 1)
    n_features = _lgb_int(header, "max_feature_idx", 0) + 1
    need(header.get("version", "").startswith("v"), "version is missing")
    for key in ("feature_names", "feature_infos"):
        need(key in header and len(_tokens(header[key])) == n_features, f"{key} does not have {n_features} entries")
    if "monotone_constraints" in header:
        need(len(_ints(header["monotone_constraints"], "monotone_constraints", -128, 127)) == n_features, "wrong monotone_constraints")
    sizes = _ints(header.get("tree_sizes", ""), "tree_sizes", 0, INT32_MAX)
    need(len(sizes) > 0 and len(sizes) % n_class == 0, "tree_sizes is missing or not a whole number of iterations")
    body = raw[trees_at + 1 :]
    need(sum(sizes) <= len(body), "the trees run past the end of the file (truncated)")
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
    need(declared in ([], [str(n_class)]), "the objective's num_class differs from the model's")
    is_classifier = objective in LGB_CLASSIFIER_OBJECTIVES
    n_classes = (2 if n_class == 1 else n_class) if is_classifier else 0
    return Summary(objective, n_features, n_classes, is_classifier)


def _lightgbm_header(text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, _, value = line.partition("=")
        need("=" not in value or key in ("feature_names", "monotone_constraints"), f"bad header line {line[:60]!r}")
        need(key not in header, f"header key {key!r} appears twice")
        header[key] = value
    return header


def _lgb_int(fields: dict[str, str], key: str, lo: int, hi: int = INT32_MAX) -> int:
    value = fields.get(key)
    need(value is not None and LGB_INT.fullmatch(value) is not None, f"{key} is missing or not an integer")
    number = int(str(value))
    need(lo <= number <= hi, f"{key} = {number} is outside [{lo}, {hi}]")
    return number


def _tokens(value: str) -> list[str]:
    return [token for token in value.split(" ") if token]


def _ints(value: str, key: str, lo: int, hi: int) -> list[int]:
    tokens = _tokens(value)
    need(all(LGB_INT.fullmatch(t) for t in tokens), f"{key} has a value that is not an integer")
    numbers = [int(t) for t in tokens]
    need(all(lo <= n <= hi for n in numbers), f"{key} has a value outside [{lo}, {hi}]")
    return numbers


def _numbers(value: str, key: str) -> list[float]:
    tokens = _tokens(value)
    need(all(LGB_NUMBER.fullmatch(t) for t in tokens), f"{key} has a value that is not a number")
    return [float(t) for t in tokens]


def _check_lightgbm_tree(block: str, index: int, n_features: int) -> None:
    head, blank, rest = block.partition("\n\n")
    need(bool(blank) and not rest.strip("\n"), f"tree {index} is not terminated by a blank line")
    lines = head.split("\n")
    need(lines[0] == f"Tree={index}", f"tree {index} does not start with 'Tree={index}'")
    body = lines[1:]
    need(0 < len(body) <= LGB_TREE_MAX_LINES and all("=" in line for line in body), f"tree {index} has malformed lines")
    fields: dict[str, str] = {}
    for line in body:
        key, _, value = line.partition("=")
        need(key not in fields, f"tree {index} repeats {key!r}")
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
        need(len(values) == length, f"{key} does not have {length} entries")
        return values

    need("leaf_value" in fields, "leaf_value is missing")
    exact("leaf_value", n_leaves)
    if "shrinkage" in fields:
        exact("shrinkage", 1)
    is_linear = fields.get("is_linear", "0")
    need(is_linear in ("0", "1"), "is_linear is not 0 or 1")
    if n_leaves == 1 and is_linear == "0":
        return
    for key in ("left_child", "right_child", "split_feature", "threshold"):
        need(key in fields, f"{key} is missing")
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
        need("cat_boundaries" in fields and "cat_threshold" in fields, "cat_boundaries or cat_threshold is missing")
        cat_boundaries = exact("cat_boundaries", n_cat + 1, "int", 0)
        n_words = len(exact("cat_threshold", cat_boundaries[-1], "int", 0, (1 << 32) - 1))
        need(cat_boundaries[0] == 0 and cat_boundaries == sorted(cat_boundaries) and cat_boundaries[-1] == n_words, "bad cat_boundaries")
    for node, (decision, threshold) in enumerate(zip(decisions, thresholds, strict=True)):
        need((decision >> 2) & 3 in LGB_MISSING_TYPES, f"node {node} has an unknown missing-value type")
        if decision & 1:
            need(threshold.is_integer() and 0 <= threshold < n_cat, f"node {node} points at a categorical split that does not exist")
    if is_linear == "1":
        _check_linear_leaves(fields, n_leaves, n_features)


def _check_lightgbm_nodes(left: list[int], right: list[int], n_leaves: int) -> None:
    """Every internal node and every leaf is reached exactly once from the root: a tree, without cycles."""
    seen_inner: set[int] = set()
    seen_leaves: set[int] = set()
    stack = [0]
    while stack:
        node = stack.pop()
        need(node not in seen_inner, f"node {node} is reached twice")
        seen_inner.add(node)
        for child in (left[node], right[node]):
            if child < 0:
                need(~child not in seen_leaves, f"leaf {~child} is reached twice")
                seen_leaves.add(~child)
            else:
                stack.append(child)
    need(len(seen_leaves) == n_leaves and len(seen_inner) == n_leaves - 1, "some nodes are unreachable")


def _check_linear_leaves(fields: dict[str, str], n_leaves: int, n_features: int) -> None:
    for key in ("leaf_const", "num_features", "leaf_features", "leaf_coeff"):
        need(key in fields, f"linear tree without {key}")
    need(len(_numbers(fields["leaf_const"], "leaf_const")) == n_leaves, "leaf_const has the wrong length")
    counts = _ints(fields["num_features"], "num_features", 0, n_features)
    need(len(counts) == n_leaves, "num_features has the wrong length")
    need(len(_ints(fields["leaf_features"], "leaf_features", 0, n_features - 1)) == sum(counts), "leaf_features has the wrong length")
    need(len(_numbers(fields["leaf_coeff"], "leaf_coeff")) == sum(counts), "leaf_coeff has the wrong length")


def _check_lightgbm_tail(tail: str) -> None:
    """After the trees: parameters LightGBM turns into JSON in C++, then the pandas categories Python reads as JSON."""
    lines = tail.split("\n")
    need(lines[0] == "end of trees", "'end of trees' is missing (truncated file)")
    if "parameters:" in lines:
        start = lines.index("parameters:") + 1
        need("end of parameters" in lines[start:], "'end of parameters' is missing")
        end = lines.index("end of parameters", start)
        need(all(not line or LGB_PARAM_LINE.fullmatch(line) for line in lines[start:end]), "a parameter line is malformed")
    need(tail.endswith("\n"), "the file does not end with a newline (truncated file)")
    last = tail.rstrip("\n").rsplit("\n", 1)[-1]
    need(last.startswith("pandas_categorical:"), "the final pandas_categorical line is missing (truncated file)")
    try:
        categories = json.loads(last.removeprefix("pandas_categorical:"))
    except (ValueError, RecursionError):
        raise Malformed("pandas_categorical is not JSON") from None
    scalar = (str, int, float, bool)
    need(
        categories is None
        or (isinstance(categories, list) and all(isinstance(c, list) and all(isinstance(v, scalar) for v in c) for c in categories)),
        "pandas_categorical is not a list of category lists",
    )
