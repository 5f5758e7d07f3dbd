"""check_structures passes real models and refuses index arrays a crafted file could point outside their buffers.

Tampered objects are rebuilt the way skops rebuilds them (a fresh object, then __setstate__ or __dict__ with the edited
state), and are never asked to predict: that is what could crash.
"""

from __future__ import annotations

import copy
import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import skops.io
from scipy import sparse
from sklearn.cluster import BisectingKMeans
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from sealserve.errors import UnsafeModelError
from sealserve.trust.integrity.walk import MAX_DEPTH, check_structures

Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def data() -> Data:
    X, y = make_classification(n_samples=150, n_features=5, n_informative=4, n_redundant=0, n_classes=3, random_state=0)
    X[:, 0] = 2 * y + np.random.default_rng(0).integers(0, 2, size=len(X))
    return X, y


@pytest.fixture(scope="module")
def tree_model(data: Data) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(random_state=0).fit(*data)


@pytest.fixture(scope="module")
def hgb_categorical(data: Data) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=5, categorical_features=[0], random_state=0).fit(*data)


def refused(model: Any, *fragments: str) -> None:
    with pytest.raises(UnsafeModelError) as caught:
        check_structures(model)
    for fragment in fragments:
        assert fragment in str(caught.value)


def with_tree_state(model: DecisionTreeClassifier, edit: Callable[[dict[str, Any]], None]) -> DecisionTreeClassifier:
    """A copy of the model whose Tree was rebuilt from an edited __getstate__, as skops' TreeNode would."""
    old = model.tree_
    state = old.__getstate__()
    state = {**state, "nodes": state["nodes"].copy(), "values": state["values"].copy()}
    edit(state)
    tree = Tree(old.n_features, np.asarray(old.n_classes), old.n_outputs)
    tree.__setstate__(state)
    tampered = copy.copy(model)
    tampered.tree_ = tree
    return tampered


def internal_node(model: DecisionTreeClassifier) -> int:
    return int(np.flatnonzero(model.tree_.children_left != -1)[1])


def test_real_models_pass(data: Data, tree_model: DecisionTreeClassifier, hgb_categorical: HistGradientBoostingClassifier) -> None:
    X, y = data
    models = [
        tree_model,
        RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y),
        GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y),
        HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y),
        hgb_categorical,
        KNeighborsClassifier(algorithm="kd_tree").fit(X, y),
        KNeighborsClassifier(algorithm="ball_tree", metric="mahalanobis", metric_params={"VI": np.eye(5)}).fit(X, y),
        make_pipeline(StandardScaler(), KNeighborsClassifier(algorithm="ball_tree")).fit(X, y),
        make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=3, categorical_features=[0])).fit(X, y),
        make_pipeline(SplineTransformer(), DecisionTreeClassifier(max_depth=4)).fit(X, y),
        SVC(random_state=0).fit(sparse.csr_matrix(X), y),
        BisectingKMeans(n_clusters=3, random_state=0).fit(X),
    ]
    for model in models:
        check_structures(model)
        file = skops.io.dumps(model)
        check_structures(skops.io.loads(file, trusted=skops.io.get_untrusted_types(data=file)))


@pytest.mark.parametrize(
    ("label", "edit", "message"),
    [
        ("child past the end", lambda s, i: s["nodes"]["right_child"].__setitem__(i, s["node_count"] + 5), "has children"),
        ("child is itself", lambda s, i: s["nodes"]["left_child"].__setitem__(i, i), "has children"),
        ("child points back up", lambda s, i: s["nodes"]["right_child"].__setitem__(i, 0), "has children"),
        ("leaf with one child", lambda s, i: s["nodes"]["right_child"].__setitem__(i, -1), "one child"),
        ("feature out of range", lambda s, i: s["nodes"]["feature"].__setitem__(i, 10_000), "feature 10000"),
        ("negative feature", lambda s, i: s["nodes"]["feature"].__setitem__(i, -3), "feature -3"),
        ("no nodes", lambda s, i: s.__setitem__("node_count", 0), "node_count 0 is outside [1, capacity"),
        ("node_count hides children", lambda s, i: s.__setitem__("node_count", i + 1), "has children"),
        ("max_depth understated", lambda s, i: s.__setitem__("max_depth", 1), "max_depth"),
    ],
)
def test_tampered_tree_is_refused(tree_model: DecisionTreeClassifier, label: str, edit: Any, message: str) -> None:
    check_structures(with_tree_state(tree_model, lambda state: None))
    node = internal_node(tree_model)
    refused(with_tree_state(tree_model, lambda state: edit(state, node)), "model.tree_", "sklearn Tree", message)


def test_tree_wider_than_its_estimator_is_refused(tree_model: DecisionTreeClassifier) -> None:
    old = tree_model.tree_
    wide = Tree(old.n_features + 20, np.asarray(old.n_classes), old.n_outputs)
    wide.__setstate__(old.__getstate__())
    tampered = copy.copy(tree_model)
    tampered.tree_ = wide
    refused(tampered, "n_features 25 differs from the estimator's n_features_in_ 5")


def test_tampered_tree_inside_a_pipeline_and_forest_is_found(data: Data, tree_model: DecisionTreeClassifier) -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(*data)
    bad = with_tree_state(forest.estimators_[1], lambda s: s["nodes"]["feature"].__setitem__(0, 99))
    tampered = copy.copy(forest)
    tampered.estimators_ = [forest.estimators_[0], bad, forest.estimators_[2]]
    pipeline = make_pipeline(StandardScaler(), tampered)
    refused(pipeline, "model.steps[1][1].estimators_[1].tree_", "feature 99")


def test_gradient_boosting_stage_width_is_checked(data: Data) -> None:
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(*data)
    tampered = copy.copy(model)
    tampered.estimators_ = np.concatenate([model.estimators_, model.estimators_], axis=1)
    refused(tampered, "trees per stage")


Position = tuple[int, int, int]


def with_predictor(
    model: HistGradientBoostingClassifier, at: Position, edit: Callable[[dict[str, Any]], None]
) -> HistGradientBoostingClassifier:
    """A copy whose TreePredictor at (iteration, k) was rebuilt from an edited __dict__, as skops' ObjectNode would."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    i, k, _ = at
    attributes = {name: value.copy() for name, value in vars(model._predictors[i][k]).items()}
    edit(attributes)
    predictor = TreePredictor.__new__(TreePredictor)
    predictor.__dict__.update(attributes)
    tampered = copy.copy(model)
    tampered._predictors = [list(iteration) for iteration in model._predictors]
    tampered._predictors[i][k] = predictor
    return tampered


def split_node(model: HistGradientBoostingClassifier, categorical: bool) -> Position:
    """The first split node (of the given kind) in any predictor: (iteration, k, node)."""
    for i, iteration in enumerate(model._predictors):
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            found = np.flatnonzero((nodes["is_leaf"] == 0) & ((nodes["is_categorical"] != 0) == categorical))
            if found.size:
                return i, k, int(found[0])
    raise AssertionError("no such split")


def test_tampered_tree_predictor_is_refused(hgb_categorical: HistGradientBoostingClassifier) -> None:
    model = hgb_categorical
    at = split_node(model, categorical=False)
    node, where = at[2], f"model._predictors[{at[0]}][{at[1]}]"
    check_structures(with_predictor(model, at, lambda attributes: None))
    refused(
        with_predictor(model, at, lambda a: a["nodes"]["left"].__setitem__(node, len(a["nodes"]) + 3)), where, "TreePredictor", "children"
    )
    refused(with_predictor(model, at, lambda a: a["nodes"]["right"].__setitem__(node, node)), where, "children")
    refused(with_predictor(model, at, lambda a: a["nodes"]["feature_idx"].__setitem__(node, 10_000)), where, "feature 10000 outside [0, 5)")
    refused(with_predictor(model, at, lambda a: a.__setitem__("raw_left_cat_bitsets", np.zeros((1, 2), np.uint32))), where, "(n, 8)")


def test_tampered_categorical_split_is_refused(hgb_categorical: HistGradientBoostingClassifier) -> None:
    model = hgb_categorical
    at = split_node(model, categorical=True)
    node = at[2]
    check_structures(with_predictor(model, at, lambda attributes: None))
    refused(with_predictor(model, at, lambda a: a["nodes"]["bitset_idx"].__setitem__(node, 500)), "uses bitset 500")
    refused(with_predictor(model, at, lambda a: a["nodes"]["feature_idx"].__setitem__(node, 3)), "does not mark categorical")


def test_hgb_preprocessor_that_narrows_x_is_refused(hgb_categorical: HistGradientBoostingClassifier) -> None:
    tampered = copy.deepcopy(hgb_categorical)
    name, _, columns = tampered._preprocessor.transformers_[1]
    tampered._preprocessor.transformers_[1] = (name, "drop", columns)
    refused(tampered, "outputs 1 columns but the estimator expects 5")


def with_binary_tree_state(model: KNeighborsClassifier, edit: Callable[[list[Any]], None]) -> KNeighborsClassifier:
    """A copy whose KDTree/BallTree was rebuilt from an edited __getstate__, as skops' ReduceNode would."""
    old = model._tree
    state = [value.copy() if isinstance(value, np.ndarray) else value for value in old.__getstate__()]
    edit(state)
    tree = type(old).__new__(type(old))
    tree.__setstate__(tuple(state))
    tampered = copy.copy(model)
    tampered._tree = tree
    return tampered


@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree"])
def test_tampered_neighbour_tree_is_refused(data: Data, algorithm: str) -> None:
    model = KNeighborsClassifier(algorithm=algorithm, leaf_size=5).fit(*data)
    n = len(data[0])
    check_structures(with_binary_tree_state(model, lambda state: None))
    where = "model._tree"
    refused(with_binary_tree_state(model, lambda s: s[1].__setitem__(3, n + 1)), where, "idx_array", f"[0, n_samples {n})")
    refused(with_binary_tree_state(model, lambda s: s[1].__setitem__(3, s[1][4])), where, "not a permutation")
    refused(with_binary_tree_state(model, lambda s: s[2]["idx_end"].__setitem__(1, n + 40)), where, "do not split its range")
    refused(with_binary_tree_state(model, lambda s: s.__setitem__(3, np.ascontiguousarray(s[3][:, :2]))), where, "node_bounds")
    refused(with_binary_tree_state(model, lambda s: s.__setitem__(4, 0)), where, "leaf_size 0")
    leaf = int(np.flatnonzero(model._tree.__getstate__()[2]["is_leaf"])[-1])
    refused(with_binary_tree_state(model, lambda s: s[2]["is_leaf"].__setitem__(leaf, 0)), where, "no children")


def test_metric_parameters_sized_for_fewer_features_are_refused(data: Data) -> None:
    model = KNeighborsClassifier(algorithm="ball_tree", metric="mahalanobis", metric_params={"VI": np.eye(5)}).fit(*data)
    metric = model._tree.__getstate__()[11]
    small = type(metric).__new__(type(metric))
    small.__setstate__((2.0, np.zeros(1), np.eye(2)))
    refused(with_binary_tree_state(model, lambda s: s.__setitem__(11, small)), "model._tree.dist_metric", "VI has shape (2, 2), not (5, 5)")


def test_sparse_matrices_with_out_of_range_indices_are_refused() -> None:
    check_structures({"ok": sparse.csr_matrix(np.eye(3))})
    bad_column = sparse.csr_matrix((np.ones(2), np.array([0, 99]), np.array([0, 1, 2, 2])), shape=(3, 3))
    refused({"m": bad_column}, "model['m']", "column index outside [0, 3)")
    bad_offsets = sparse.csc_array((np.ones(2), np.array([0, 1]), np.array([0, 2, 1, 2])), shape=(3, 3))
    refused([bad_offsets], "model[0]", "indptr")


def test_tampered_libsvm_arrays_are_refused(data: Data) -> None:
    model = SVC(random_state=0).fit(*data)
    check_structures(model)
    tampered = copy.copy(model)
    tampered._n_support = model._n_support + 7
    refused(tampered, "does not add up")
    tampered = copy.copy(model)
    tampered._dual_coef_ = model._dual_coef_[:, :3].copy()
    refused(tampered, "libsvm arrays disagree")


def test_skops_file_with_a_patched_node_array_is_refused(tree_model: DecisionTreeClassifier) -> None:
    """End to end: edit the Tree's node array inside the skops zip, load it with the types trusted, and refuse it."""
    original = skops.io.dumps(tree_model)
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    node_file = _tree_nodes_file(json.loads(members["schema.json"]))
    nodes = np.load(io.BytesIO(members[node_file]), allow_pickle=False)
    nodes["right_child"][0] = len(nodes) + 1000
    patched_npy = io.BytesIO()
    np.save(patched_npy, nodes, allow_pickle=False)
    members[node_file] = patched_npy.getvalue()
    patched = io.BytesIO()
    with zipfile.ZipFile(patched, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)

    check_structures(skops.io.loads(original, trusted=["sklearn.tree._tree.Tree"]))
    loaded = skops.io.loads(patched.getvalue(), trusted=["sklearn.tree._tree.Tree"])
    refused(loaded, "model.tree_", "sklearn Tree node 0 has children")


def _tree_nodes_file(node: Any) -> str:
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            if current.get("__class__") == "Tree":
                return str(current["content"]["content"]["nodes"]["file"])
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    raise AssertionError("no Tree in the skops schema")


def test_large_forest_is_checked_quickly(data: Data) -> None:
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(*data)
    forest.estimators_ = [copy.deepcopy(tree) for _ in range(10) for tree in forest.estimators_]
    check_structures(forest)
    started = time.perf_counter()
    check_structures(forest)
    assert time.perf_counter() - started < 1.0


def test_structures_too_malformed_to_read_are_refused(
    tree_model: DecisionTreeClassifier, hgb_categorical: HistGradientBoostingClassifier
) -> None:
    tampered = copy.copy(tree_model)
    tampered.tree_ = [1, 2, 3]
    refused(tampered, "model.tree_", "not a sklearn Tree")
    tampered = copy.copy(hgb_categorical)
    tampered._predictors = 7
    refused(tampered, "malformed HistGradientBoostingClassifier (TypeError")


def test_classes_other_than_dtypes_are_refused(data: Data) -> None:
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    check_structures(OneHotEncoder(dtype=np.float32).fit(data[0][:, :1]))
    refused(FunctionTransformer(func=sparse.csr_matrix), "model.func", "holds the class scipy.sparse._csr.csr_matrix")
    refused({"steps": [("tree", Tree)]}, "model['steps'][0][1]", "sklearn.tree._tree.Tree")


def test_graph_guards() -> None:
    cyclic: list[Any] = [np.arange(3)]
    cyclic.append(cyclic)
    check_structures({"a": cyclic, "b": cyclic})
    nested: list[Any] = []
    for _ in range(MAX_DEPTH + 5):
        nested = [nested]
    refused(nested, "nested more than")
