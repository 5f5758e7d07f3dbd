"""XGBoost and LightGBM in their own data-only formats: exact round trips, refusals instead of crashes, ONNX parity."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sealserve.errors import BundleFormatError
from sealserve.packing.boosters import save_booster
from sealserve.trust.boosters.load import load_booster
from sealserve.trust.boosters.served import (
    BOOSTER_CLASSES,
    BoosterClassifier,
    BoosterRegressor,
    as_served,
    booster_library,
    needs_frame,
)

ROWS = 120
PROBA_TOLERANCE = 1e-9
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Data:
    array: np.ndarray
    frame: pd.DataFrame  # numeric columns plus a string and an integer pandas category
    binary: np.ndarray
    three: np.ndarray
    labels: np.ndarray
    target: np.ndarray


@pytest.fixture(scope="module")
def data() -> Data:
    rng = np.random.default_rng(7)
    array = rng.normal(size=(ROWS, 4))
    frame = pd.DataFrame(array[:, :3], columns=["age", "bmi", "dose"])
    frame["colour"] = pd.Categorical(rng.choice(["red", "green", "blue"], ROWS))
    frame["grade"] = pd.Categorical(rng.choice([10, 20, 30], ROWS))
    binary = ((array[:, 0] + (frame["colour"] == "red")) > 0.5).astype(int)
    three = np.digitize(array[:, 0] + (frame["grade"] == 20), [-0.3, 0.7])
    return Data(array, frame, binary, three, np.array(["low", "mid", "high"])[three], array[:, 0] * 2 + array[:, 1])


@dataclass(frozen=True)
class Case:
    model: Any
    rows: Any
    classes: list[Any] | None

    @property
    def n_features(self) -> int:
        return int(self.rows.shape[1])


def _cases(d: Data) -> dict[str, Case]:
    small = {"n_estimators": 5, "max_depth": 3}
    lgb_small = {"n_estimators": 5, "num_leaves": 7, "min_child_samples": 5, "verbose": -1}
    lgb_params = {"num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1}
    return {
        "xgb-binary-array": Case(xgb.XGBClassifier(**small).fit(d.array, d.binary), d.array, [0, 1]),
        "xgb-3class-frame-category": Case(
            xgb.XGBClassifier(**small, enable_categorical=True, max_cat_to_onehot=1).fit(d.frame, d.three), d.frame, [0, 1, 2]
        ),
        "xgb-regressor-array": Case(xgb.XGBRegressor(**small).fit(d.array, d.target), d.array, None),
        "xgb-booster-binary-array": Case(
            xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(d.array, label=d.binary), 5), d.array, [0, 1]
        ),
        "xgb-booster-regression-frame-category": Case(
            xgb.train({"max_depth": 3}, xgb.DMatrix(d.frame, label=d.target, enable_categorical=True), 5), d.frame, None
        ),
        "lgb-binary-array": Case(lgb.LGBMClassifier(**lgb_small).fit(d.array, d.binary), d.array, [0, 1]),
        "lgb-3class-strings-frame-category": Case(
            lgb.LGBMClassifier(**lgb_small).fit(d.frame, d.labels), d.frame, sorted(set(d.labels.tolist()))
        ),
        "lgb-3class-array": Case(lgb.LGBMClassifier(**lgb_small).fit(d.array, d.three), d.array, [0, 1, 2]),
        "lgb-regressor-array": Case(lgb.LGBMRegressor(**lgb_small).fit(d.array, d.target), d.array, None),
        "lgb-booster-binary-frame-category": Case(
            lgb.train({"objective": "binary", **lgb_params}, lgb.Dataset(d.frame, label=d.binary), 5), d.frame, [0, 1]
        ),
        "lgb-booster-regression-array": Case(
            lgb.train({"objective": "regression", **lgb_params}, lgb.Dataset(d.array, label=d.target), 5), d.array, None
        ),
    }


@pytest.fixture(scope="module")
def cases(data: Data) -> dict[str, Case]:
    return _cases(data)


@dataclass(frozen=True)
class Saved:
    path: Path
    library: str
    model_class: str
    case: Case


@pytest.fixture(scope="module")
def saved(cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Saved]:
    folder = tmp_path_factory.mktemp("boosters")
    result = {}
    for name, case in cases.items():
        library = booster_library(case.model)
        assert library is not None
        path = folder / (f"{name}.json" if library == "xgboost" else f"{name}.txt")
        result[name] = Saved(path, library, save_booster(case.model, path), case)
    return result


def _load(item: Saved, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {"n_features": item.case.n_features, "classes": item.case.classes}
    arguments.update(overrides)
    return load_booster(item.path, item.library, item.model_class, **arguments)


def _original_output(model: Any, rows: Any) -> np.ndarray:
    """What the fitted object itself predicts: probabilities for classifiers, the raw value for regressors and boosters."""
    if isinstance(model, xgb.Booster):
        return np.asarray(model.predict(xgb.DMatrix(rows, enable_categorical=True)))
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(rows))
    return np.asarray(model.predict(rows))


CASE_NAMES = [
    "xgb-binary-array",
    "xgb-3class-frame-category",
    "xgb-regressor-array",
    "xgb-booster-binary-array",
    "xgb-booster-regression-frame-category",
    "lgb-binary-array",
    "lgb-3class-strings-frame-category",
    "lgb-3class-array",
    "lgb-regressor-array",
    "lgb-booster-binary-frame-category",
    "lgb-booster-regression-array",
]


# ------------------------------------------------------------------------------------------------------ round trip


def test_qualified_class_names_are_the_real_ones(cases: dict[str, Case]) -> None:
    seen = {f"{type(case.model).__module__}.{type(case.model).__qualname__}" for case in cases.values()}
    assert seen == set(BOOSTER_CLASSES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_save_then_load_predicts_exactly_like_the_fitted_model(saved: dict[str, Saved], name: str) -> None:
    item = saved[name]
    model, rows = item.case.model, item.case.rows
    loaded = _load(item)
    expected = _original_output(model, rows)
    if item.case.classes is None:
        assert not hasattr(loaded, "predict_proba")
        np.testing.assert_array_equal(loaded.predict(rows), expected)
        return
    probabilities = loaded.predict_proba(rows)
    assert probabilities.shape == (len(rows), len(item.case.classes))
    if expected.ndim == 1:
        expected = np.vstack((1.0 - expected, expected)).transpose()
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=PROBA_TOLERANCE)
    assert list(loaded.classes_) == list(item.case.classes)
    reference = model.predict(rows) if hasattr(model, "predict_proba") else np.asarray(item.case.classes)[expected.argmax(axis=1)]
    np.testing.assert_array_equal(loaded.predict(rows), reference)


def test_loaded_types_and_frame_needs(saved: dict[str, Saved]) -> None:
    kinds = {name: type(_load(item)).__name__ for name, item in saved.items()}
    assert kinds["xgb-binary-array"] == "XGBClassifier"
    assert kinds["xgb-regressor-array"] == "XGBRegressor"
    assert kinds["xgb-booster-binary-array"] == kinds["lgb-binary-array"] == BoosterClassifier.__name__
    assert kinds["xgb-booster-regression-frame-category"] == kinds["lgb-regressor-array"] == BoosterRegressor.__name__
    frames = {name for name, item in saved.items() if needs_frame(_load(item))}
    assert frames == {name for name in saved if name.endswith("frame-category")}


@pytest.mark.parametrize("name", [name for name in CASE_NAMES if "booster" in name])
def test_as_served_wraps_a_fitted_booster_like_the_loader(saved: dict[str, Saved], name: str) -> None:
    item = saved[name]
    served, loaded = as_served(item.case.model, item.case.classes), _load(item)
    assert type(served) is type(loaded)
    method = "predict_proba" if item.case.classes is not None else "predict"
    np.testing.assert_array_equal(getattr(served, method)(item.case.rows), getattr(loaded, method)(item.case.rows))
    assert as_served(saved["xgb-binary-array"].case.model) is saved["xgb-binary-array"].case.model


def test_numeric_models_fitted_on_a_frame_also_take_an_array(data: Data, tmp_path: Path) -> None:
    """Feature names are kept, yet an array of the same columns predicts the same; only categories need a frame."""
    frame = data.frame[["age", "bmi", "dose"]]
    for model in (xgb.XGBRegressor(n_estimators=5).fit(frame, data.target), xgb.train({}, xgb.DMatrix(frame, label=data.target), 5)):
        path = tmp_path / "named.json"
        loaded = load_booster(path, "xgboost", save_booster(model, path), n_features=3)
        assert not needs_frame(loaded)
        np.testing.assert_array_equal(loaded.predict(frame.to_numpy()), loaded.predict(frame))
        np.testing.assert_array_equal(loaded.predict(frame), _original_output(model, frame))


def test_raw_xgboost_booster_with_a_non_probability_objective_is_a_regressor(data: Data, tmp_path: Path) -> None:
    booster = xgb.train({"objective": "binary:logitraw"}, xgb.DMatrix(data.array, label=data.binary), 3)
    path = tmp_path / "margin.json"
    loaded = load_booster(path, "xgboost", save_booster(booster, path), n_features=4)
    assert isinstance(loaded, BoosterRegressor)
    np.testing.assert_array_equal(loaded.predict(data.array), booster.predict(xgb.DMatrix(data.array)))


def test_xgboost_files_are_json_and_lightgbm_files_are_text(saved: dict[str, Saved]) -> None:
    for item in saved.values():
        raw = item.path.read_bytes()
        if item.library == "xgboost":
            assert json.loads(raw)["learner"]
        else:
            assert raw.startswith(b"tree\nversion=")


# --------------------------------------------------------------------------------------------------------- library


def test_booster_library_is_by_exact_type(cases: dict[str, Case], data: Data) -> None:
    assert {booster_library(case.model) for case in cases.values()} == {"xgboost", "lightgbm"}
    assert booster_library(LogisticRegression()) is None
    assert booster_library(make_pipeline(StandardScaler(), xgb.XGBClassifier(n_estimators=2).fit(data.array, data.binary))) is None
    assert booster_library(type("XGBClassifier", (xgb.XGBClassifier,), {})()) is None


def test_module_imports_without_xgboost_or_lightgbm() -> None:
    code = (
        "import sys; sys.modules['xgboost'] = None; sys.modules['lightgbm'] = None\n"
        "from sealserve.packing import boosters as packing\n"
        "from sealserve.trust.boosters import load, served\n"
        "assert served.booster_library(object()) is None and 'xgboost.core.Booster' in served.BOOSTER_CLASSES\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------------------------------------- refusals


def test_save_refuses_unfitted_unsupported_and_non_json_paths(tmp_path: Path, data: Data) -> None:
    for unfitted in (xgb.XGBClassifier(), lgb.LGBMRegressor()):
        with pytest.raises(BundleFormatError, match="not fitted"):
            save_booster(unfitted, tmp_path / "m.json")
    with pytest.raises(BundleFormatError, match="not a supported booster"):
        save_booster(LogisticRegression().fit(data.array, data.binary), tmp_path / "m.json")
    with pytest.raises(BundleFormatError, match=r"must end in \.json"):
        save_booster(xgb.XGBRegressor(n_estimators=2).fit(data.array, data.target), tmp_path / "m.ubj")


@pytest.mark.parametrize(
    ("name", "library", "model_class", "message"),
    [
        ("lgb-binary-array", "xgboost", "xgboost.core.Booster", "LightGBM text model, not XGBoost JSON"),
        ("xgb-binary-array", "lightgbm", "lightgbm.basic.Booster", "XGBoost JSON, not a LightGBM text model"),
        ("xgb-binary-array", "xgboost", "lightgbm.sklearn.LGBMClassifier", "not a supported xgboost class"),
        ("xgb-binary-array", "xgboost", "sklearn.linear_model._logistic.LogisticRegression", "not a supported xgboost class"),
        ("xgb-binary-array", "xgboost", "xgboost.sklearn.XGBRegressor", "not a XGBRegressor"),
        ("xgb-regressor-array", "xgboost", "xgboost.sklearn.XGBClassifier", "not a XGBClassifier"),
        ("lgb-binary-array", "lightgbm", "lightgbm.sklearn.LGBMRegressor", "not a LGBMRegressor"),
        ("lgb-regressor-array", "lightgbm", "lightgbm.sklearn.LGBMClassifier", "not a LGBMClassifier"),
    ],
)
def test_files_that_are_not_what_the_metadata_says_are_refused(
    saved: dict[str, Saved], name: str, library: str, model_class: str, message: str
) -> None:
    item = saved[name]
    with pytest.raises(BundleFormatError, match=re.escape(message)):
        load_booster(item.path, library, model_class, n_features=item.case.n_features)


@pytest.mark.parametrize("name", ["xgb-3class-frame-category", "lgb-3class-strings-frame-category", "xgb-booster-binary-array"])
def test_feature_and_class_counts_must_match_the_metadata(saved: dict[str, Saved], name: str) -> None:
    item = saved[name]
    assert item.case.classes is not None
    with pytest.raises(BundleFormatError, match="features; the metadata says"):
        _load(item, n_features=item.case.n_features + 1)
    with pytest.raises(BundleFormatError, match="classes; the metadata lists"):
        _load(item, classes=[*item.case.classes, "extra"])
    with pytest.raises(BundleFormatError, match="classes; the metadata lists"):
        _load(item, classes=item.case.classes[:1])


def test_classes_for_a_regressor_and_relabelled_xgboost_classes_are_refused(saved: dict[str, Saved]) -> None:
    with pytest.raises(BundleFormatError, match="regression model"):
        _load(saved["lgb-regressor-array"], classes=[0, 1])
    with pytest.raises(BundleFormatError, match=r"predicts classes 0\.\.1"):
        _load(saved["xgb-binary-array"], classes=["no", "yes"])


@pytest.mark.parametrize("name", ["xgb-3class-frame-category", "lgb-3class-strings-frame-category", "lgb-booster-regression-array"])
def test_garbage_empty_and_truncated_files_are_refused(saved: dict[str, Saved], name: str, tmp_path: Path) -> None:
    """Both libraries' own loaders abort the process on some of these (an empty XGBoost file, a cut LightGBM file)."""
    item = saved[name]
    raw = item.path.read_bytes()
    cuts = {0, 1, len(raw) - 1, len(raw) - 2, len(raw) - 30, *range(0, len(raw), max(1, len(raw) // 40))}
    variants = [b"garbage\x00\xff\xfe", b"\x80\x04\x95", b"{}", b"tree\n", *(raw[:cut] for cut in sorted(cuts))]
    bad = tmp_path / item.path.name
    for variant in variants:
        bad.write_bytes(variant)
        with pytest.raises(BundleFormatError):
            load_booster(bad, item.library, item.model_class, n_features=item.case.n_features, classes=item.case.classes)


def _edit_xgboost(raw: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    document = json.loads(raw)
    edit(document["learner"]["gradient_booster"]["model"]["trees"][0])
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda tree: tree["left_children"].__setitem__(0, 99999), "left_children"),
        (lambda tree: tree["split_indices"].__setitem__(0, 99999), "splits on feature"),
        (lambda tree: tree["parents"].__setitem__(1, 99), "name another parent"),
        (lambda tree: tree.__setitem__("id", 3), "its id is not its position"),
        (lambda tree: tree["left_children"].__setitem__(1, 0), "name another parent"),
    ],
)
def test_xgboost_trees_that_would_crash_the_predictor_are_refused(
    saved: dict[str, Saved], tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    item = saved["xgb-binary-array"]
    bad = tmp_path / "bad.json"
    bad.write_bytes(_edit_xgboost(item.path.read_bytes(), edit))
    with pytest.raises(BundleFormatError, match=message):
        load_booster(bad, "xgboost", item.model_class, n_features=4)


@pytest.mark.parametrize(
    ("pattern", "replacement", "message"),
    [
        (r"num_tree_per_iteration=1", "num_tree_per_iteration=3", "num_tree_per_iteration"),
        (r"left_child=-?\d+", "left_child=50", "left_child"),
        (r"split_feature=\d+", "split_feature=9", "split_feature"),
        (r"tree_sizes=\d+", "tree_sizes=99999999", "truncated"),
        (r"num_class=1", "num_class=2147483647", "num_class"),
    ],
)
def test_lightgbm_models_that_would_crash_the_loader_are_refused(
    saved: dict[str, Saved], tmp_path: Path, pattern: str, replacement: str, message: str
) -> None:
    item = saved["lgb-booster-regression-array"]
    text = item.path.read_text()
    bad = tmp_path / "bad.txt"
    bad.write_text(re.sub(pattern, replacement, text, count=1))
    with pytest.raises(BundleFormatError, match=message):
        load_booster(bad, "lightgbm", item.model_class, n_features=4)


# ----------------------------------------------------------------------------------------------------------- ONNX


ONNX_CASES = [
    "xgb-binary-array",
    "xgb-regressor-array",
    "xgb-booster-binary-array",
    "lgb-binary-array",
    "lgb-3class-array",
    "lgb-regressor-array",
    "lgb-booster-regression-array",
]


@pytest.fixture(scope="module")
def onnx_cases(cases: dict[str, Case], data: Data) -> dict[str, Case]:
    extra = {
        "xgb-3class-array": Case(xgb.XGBClassifier(n_estimators=5).fit(data.array, data.three), data.array, [0, 1, 2]),
        "lgb-3class-strings-array": Case(
            lgb.LGBMClassifier(n_estimators=5, verbose=-1, min_child_samples=5).fit(data.array, data.labels),
            data.array,
            sorted(set(data.labels.tolist())),
        ),
        "lgb-booster-softmax-alias": Case(
            lgb.train({"objective": "softmax", "num_class": 3, "verbose": -1}, lgb.Dataset(data.array, label=data.three), 5),
            data.array,
            [0, 1, 2],
        ),
    }
    return {**{name: cases[name] for name in ONNX_CASES}, **extra}


@pytest.mark.parametrize("name", [*ONNX_CASES, "xgb-3class-array", "lgb-3class-strings-array", "lgb-booster-softmax-alias"])
def test_onnx_export_matches_the_model(onnx_cases: dict[str, Case], name: str) -> None:
    import onnxruntime

    from sealserve.packing.onnx.boosters import export_booster_onnx

    case = onnx_cases[name]
    session = onnxruntime.InferenceSession(export_booster_onnx(case.model, case.n_features), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: case.rows.astype(np.float32)})
    expected = _original_output(case.model, case.rows)
    if case.classes is None:
        assert len(outputs) == 1
        assert outputs[0].shape == (ROWS, 1)
        assert np.max(np.abs(outputs[0][:, 0] - expected)) < ONNX_TOLERANCE * max(1.0, float(np.max(np.abs(expected))))
        return
    labels, probabilities = outputs
    assert labels.shape == (ROWS,)
    assert probabilities.shape == (ROWS, len(case.classes))
    assert probabilities.dtype == np.float32
    if expected.ndim == 1:
        expected = np.vstack((1.0 - expected, expected)).transpose()
    assert np.max(np.abs(probabilities - expected)) < ONNX_TOLERANCE
    if hasattr(case.model, "predict_proba"):
        np.testing.assert_array_equal(labels, case.model.predict(case.rows))


def test_onnx_export_refuses_what_it_cannot_represent(cases: dict[str, Case], data: Data) -> None:
    from sealserve.packing.onnx.boosters import export_booster_onnx

    with pytest.raises(BundleFormatError, match="categorical features"):
        export_booster_onnx(cases["lgb-3class-strings-frame-category"].model, 5)
    with pytest.raises(BundleFormatError, match="has 4 features, not 5"):
        export_booster_onnx(cases["xgb-binary-array"].model, 5)
    with pytest.raises(BundleFormatError, match="not an XGBoost or LightGBM model"):
        export_booster_onnx(LogisticRegression().fit(data.array, data.binary), 4)
    with pytest.raises(BundleFormatError, match="onnxmltools cannot convert"):
        export_booster_onnx(xgb.XGBRegressor(n_estimators=2, booster="dart").fit(data.array, data.target), 4)
    with pytest.raises(BundleFormatError, match="for the regressor"):
        export_booster_onnx(xgb.train({"objective": "binary:logitraw"}, xgb.DMatrix(data.array, label=data.binary), 2), 4)
