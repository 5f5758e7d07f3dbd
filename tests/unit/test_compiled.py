"""The compiled form: pack adds model.onnx with a parity record when the model converts and agrees with the reference on
the sample; the server serves it (or says why the reference serves); verification admits it only as the signed model.onnx.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter
from sklearn.ensemble import (
    AdaBoostClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import sealserve
import sealserve.packing.compile as compiler_module
from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import METADATA_FILE, BundleMetadata, FeatureKind
from sealserve.errors import BundleFormatError, ConfigError, UnsafeModelError
from sealserve.packing.build import sign_folder
from sealserve.packing.compile import NOT_REQUESTED, PROBE_ROWS, TEXT_SKIPPED
from sealserve.packing.onnx.export import TREE_MISSING_VALUES, export_onnx
from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.choice import COMPILED_TOLERANCE, PICKLE_SERVES_ITSELF, choose_runtime
from sealserve.serve.config import BundleSource
from sealserve.serve.lifecycle.loading import serve_verified
from sealserve.serve.lifecycle.registry import ModelRegistry
from sealserve.serve.lifecycle.trial import TrialRunner
from sealserve.serve.request.responses import describe_state
from sealserve.trust.verify import verify_bundle
from tests.conftest import CLASS_LABELS, FEATURE_OVERRIDES, make_training_frame
from tests.support.bundles import Workspace
from tests.support.zoo import census

VERSION = "1.0.0"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


# --- models ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A fitted model, the sample it is packed with, and `to_input`: the sample as the fitted model itself takes it."""

    model: Any
    sample: pd.DataFrame
    to_input: Callable[[pd.DataFrame], Any]
    features: dict[str, dict[str, Any]] | None = None
    class_labels: dict[Any, str] | None = None


def rows(frame: pd.DataFrame) -> np.ndarray:
    return frame.to_numpy(dtype="float64")


def risk_case(model: Any) -> Case:
    """The diabetes-like risk data of the other unit tests (integer, float and coded category features)."""
    frame, target = make_training_frame()
    return Case(model.fit(rows(frame), target), frame, rows, FEATURE_OVERRIDES, CLASS_LABELS)


def xgboost_case() -> Case:
    import xgboost as xgb

    return risk_case(xgb.XGBClassifier(n_estimators=20, max_depth=3))


def lightgbm_case() -> Case:
    import lightgbm as lgb

    return risk_case(lgb.LGBMClassifier(n_estimators=20, min_child_samples=5, verbose=-1))


def census_case() -> Case:
    zoo = census(np.random.default_rng(0))
    return Case(zoo.estimator, zoo.sample, lambda frame: frame)


def regression_case() -> Case:
    frame, _ = make_training_frame()
    target = frame["bmi"] * 3.0 + frame["age"] - frame["general_health"] * 7.0
    return Case(GradientBoostingRegressor(n_estimators=40, random_state=0).fit(rows(frame), target), frame, rows)


COMPILING: dict[str, Callable[[], Case]] = {
    "logistic_regression": lambda: risk_case(LogisticRegression(max_iter=500)),
    "random_forest": lambda: risk_case(RandomForestClassifier(n_estimators=30, random_state=0)),
    "gradient_boosting_pipeline": lambda: risk_case(
        make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=40, random_state=0))
    ),
    "hist_gradient_boosting": lambda: risk_case(HistGradientBoostingClassifier(max_iter=30, random_state=0)),
    "adaboost": lambda: risk_case(AdaBoostClassifier(n_estimators=60, random_state=0)),  # float32: its double graph does not load
    "census_column_transformer": census_case,
    "regressor": regression_case,
}


# --- helpers -----------------------------------------------------------------------------------------------------------


def pack(case: Case, out: Path, key: keys.SigningKey, name: str = "model", **options: Any) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sealserve.pack(
            case.model,
            name=name,
            version=VERSION,
            private_key=key,
            out=out,
            sample=case.sample,
            features=case.features,
            class_labels=case.class_labels,
            **options,
        )


def metadata_of(bundle: Path) -> BundleMetadata:
    return BundleMetadata.model_validate_json((bundle / METADATA_FILE).read_bytes())


def source(name: str, runtime: str = "auto") -> BundleSource:
    # trial_prediction off: these tests are about the runtime choice (the trial has its own tests, and one below)
    settings = {"name": name, "store_url": "file:///unused", "keyring": "unused.json", "runtime": runtime, "trial_prediction": False}
    return BundleSource.model_validate(settings)


def serve(bundle: Path, ring: Keyring, runtime: str = "auto") -> BundleModel:
    """What the registry does with a verified bundle: choose the runtime, deserialize only it."""
    verified = verify_bundle(bundle, ring)
    model = serve_verified(source(verified.metadata.name, runtime), verified, TrialRunner()).model
    assert isinstance(model, BundleModel)
    return model


def client_records(model: BundleModel, sample: pd.DataFrame) -> list[Any]:
    """The sample as clients send it (category labels, not codes), validated like a request."""
    labels = {
        feature.name: {code: label for label, code in (feature.categories or {}).items()}
        for feature in model.metadata.features
        if feature.kind is FeatureKind.CATEGORY
    }
    records = [
        {name: None if pd.isna(value) else labels.get(name, {}).get(value, value) for name, value in row.items()}
        for row in sample.to_dict("records")
    ]
    return TypeAdapter(list[model.input_schema]).validate_python(records)  # type: ignore[name-defined]


def resign(bundle: Path, key: keys.SigningKey, edit: Callable[[dict[str, Any]], None]) -> Path:
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    edit(metadata)
    (bundle / METADATA_FILE).write_text(json.dumps(metadata))
    sign_folder(bundle, key, subject=metadata["name"])
    return bundle


@pytest.fixture(scope="module")
def compiled_bundles(tmp_path_factory: pytest.TempPathFactory, signing_key: keys.SigningKey) -> dict[str, tuple[Case, Path]]:
    root = tmp_path_factory.mktemp("compiled")
    built = {}
    for name, make in COMPILING.items():
        try:
            case = make()
        except pytest.skip.Exception:
            continue
        built[name] = (case, pack(case, root / name, signing_key, name=name))
    return built


@pytest.fixture
def compiled(request: pytest.FixtureRequest, compiled_bundles: dict[str, tuple[Case, Path]]) -> tuple[Case, Path]:
    name = request.param
    if name not in compiled_bundles:
        pytest.skip(f"{name} needs a library that is not installed")
    return compiled_bundles[name]


@pytest.fixture
def risk_bundle(compiled_bundles: dict[str, tuple[Case, Path]], tmp_path: Path) -> Path:
    """A writable copy of the compiled logistic regression bundle."""
    return Path(shutil.copytree(compiled_bundles["logistic_regression"][1], tmp_path / "bundle"))


# --- the parity record -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compiled", list(COMPILING), indirect=True)
def test_compiled_form_is_signed_and_its_parity_record_is_what_onnxruntime_answers(
    compiled: tuple[Case, Path], trusted_keyring: Keyring
) -> None:
    case, bundle = compiled
    meta = metadata_of(bundle)
    assert meta.compiled is not None, meta.compiled_skipped
    assert (meta.compiled.file, meta.compiled.runtime, meta.compiled_skipped) == ("model.onnx", "onnxruntime", None)
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        assert {"model.onnx", meta.model_file} <= set(verified.file_digests)
        session = verified.load_compiled()
    finally:
        verified.discard()
    parity = meta.compiled.parity
    probes = sum(feature.nullable for feature in meta.features) + sum(feature.allow_unknown for feature in meta.features)
    assert parity.rows == len(case.sample) + min(PROBE_ROWS, len(case.sample)) * probes
    assert parity.tolerance == COMPILED_TOLERANCE == 1e-5

    # Recompute independently: onnxruntime on the raw sample columns, the estimator on what it was fitted on.
    inputs = session.get_inputs()
    dtypes = {"tensor(double)": np.float64, "tensor(float)": np.float32, "tensor(string)": object}
    if len(inputs) == 1:
        feed = {inputs[0].name: case.sample.to_numpy().astype(dtypes[inputs[0].type])}
    else:
        assert [item.name for item in inputs] == list(case.sample.columns)  # one ONNX input per DataFrame column
        feed = {item.name: case.sample[[item.name]].to_numpy().astype(dtypes[item.type]) for item in inputs}
    outputs = session.run(None, feed)
    fitted_input = case.to_input(case.sample)
    if meta.output.task == "regression":
        expected = np.asarray(case.model.predict(fitted_input), dtype=np.float64)
        worst = np.max(np.abs(outputs[0].reshape(-1) - expected)) / np.max(np.abs(expected))
        assert (parity.label_agreement, parity.max_abs_probability_diff) == (None, None)
        assert_recorded(parity.max_abs_value_diff, worst, probes)
        assert parity.max_abs_value_diff <= 1e-5
        return
    assert outputs[0].tolist() == np.asarray(case.model.predict(fitted_input)).tolist()
    worst = np.max(np.abs(outputs[1] - case.model.predict_proba(fitted_input)))
    assert parity.label_agreement == 1.0
    assert parity.max_abs_value_diff is None
    assert_recorded(parity.max_abs_probability_diff, worst, probes)
    assert parity.max_abs_probability_diff <= 1e-5


def assert_recorded(recorded: float | None, on_the_sample: float, probes: int) -> None:
    """The record covers the sample and, when the model takes missing or unseen values, the probe rows too."""
    assert recorded is not None
    if probes:
        assert recorded >= on_the_sample * (1 - 1e-6)
    else:
        assert recorded == pytest.approx(on_the_sample, rel=1e-6, abs=1e-15)


@pytest.mark.parametrize("compiled", list(COMPILING), indirect=True)
def test_the_server_answers_from_the_compiled_runtime_like_the_estimator(compiled: tuple[Case, Path], trusted_keyring: Keyring) -> None:
    case, bundle = compiled
    model = serve(bundle, trusted_keyring)
    assert (model.runtime_name, model.compiled_skipped) == ("onnxruntime", None)
    outputs = [output.model_dump() for output in model.predict_batch(client_records(model, case.sample))]
    fitted_input = case.to_input(case.sample)
    expected = np.asarray(case.model.predict(fitted_input)).tolist()
    if model.metadata.output.task == "regression":
        scale = max(abs(value) for value in expected)
        assert all(
            math.isclose(out["prediction"], want, rel_tol=0, abs_tol=1e-5 * scale) for out, want in zip(outputs, expected, strict=True)
        )
        return
    label_of = {item.value: item.label for item in model.metadata.output.classes}
    assert [out["prediction"] for out in outputs] == [label_of[value] for value in expected]
    probabilities = np.asarray(case.model.predict_proba(fitted_input))
    served = np.array([list(out["probabilities"].values()) for out in outputs])
    tolerance = metadata_of(bundle).compiled.parity.tolerance  # type: ignore[union-attr]
    assert np.max(np.abs(served - probabilities)) <= tolerance


def split_rows(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Sample rows moved onto every split: the threshold itself and its neighbours in float64 and float32."""
    splits: list[tuple[int, float]] = []
    if hasattr(model, "estimators_"):
        splits = [
            (int(f), float(t))
            for tree in model.estimators_
            for f, t in zip(tree.tree_.feature, tree.tree_.threshold, strict=True)
            if f >= 0
        ]
    elif hasattr(model, "_predictors"):
        splits = [
            (int(n["feature_idx"]), float(n["num_threshold"])) for it in model._predictors for t in it for n in t.nodes if not n["is_leaf"]
        ]
    else:
        dump = model.booster_.dump_model()["tree_info"]

        def walk(node: dict[str, Any]) -> None:
            if "split_feature" in node:
                splits.append((int(node["split_feature"]), float(node["threshold"])))
                walk(node["left_child"])
                walk(node["right_child"])

        for tree in dump:
            walk(tree["tree_structure"])
    probes = []
    for index, (feature, threshold) in enumerate(splits):
        single = np.float32(threshold)
        for value in {threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, -np.inf), float(single)}:
            row = frame.iloc[index % len(frame)].copy()
            row.iloc[feature] = value
            probes.append(row)
    return pd.DataFrame(probes).reset_index(drop=True)


@pytest.mark.parametrize(
    ("compiled", "precision"),
    [("hist_gradient_boosting", "tensor(double)"), ("adaboost", "tensor(float)")],
    indirect=["compiled"],
)
def test_compiled_trees_split_exactly_where_the_estimator_does(
    compiled: tuple[Case, Path], precision: str, trusted_keyring: Keyring
) -> None:
    """Rows sitting on (or one ulp beside) every split answer like the estimator: double thresholds and a double input
    where the estimator compares in float64; float32 only for scikit-learn's own trees reading the input directly (they
    cast X to float32 themselves, and skl2onnx adjusts their thresholds for that cast)."""
    case, bundle = compiled
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        assert [item.type for item in verified.load_compiled().get_inputs()] == [precision]
    finally:
        verified.discard()
    probes = split_rows(case.model, case.sample.astype("float64"))
    assert len(probes) > 100
    model = serve(bundle, trusted_keyring)
    assert model.runtime_name == "onnxruntime"
    served = model.runtime(model.adapter.from_sample(probes))  # exactly what a request with these values runs
    fitted = case.to_input(probes)
    assert served.values.tolist() == np.asarray(case.model.predict(fitted)).tolist()
    assert served.probabilities is not None
    assert np.max(np.abs(served.probabilities - case.model.predict_proba(fitted))) <= 1e-5


# --- falling back to the reference runtime -----------------------------------------------------------------------------


def categorical_hgb() -> Case:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.normal(size=300), "kind": rng.integers(0, 6, 300).astype("float64")})
    target = ((frame["kind"] % 2 == 0) ^ (frame["size"] > 0)).astype(int)
    model = HistGradientBoostingClassifier(categorical_features=[1], max_iter=20, random_state=0).fit(rows(frame), target)
    return Case(model, frame, rows)


def text_pipeline() -> Case:
    texts = ["good great fine", "bad awful poor", "great good", "poor bad"] * 10
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0] * 10)
    return Case(model, pd.DataFrame({"review": texts}), lambda frame: frame["review"].tolist())


def unconvertible() -> Case:
    frame, target = make_training_frame()
    return Case(KernelRidge(alpha=1.0).fit(rows(frame), target.astype(float)), frame, rows)


def scaled_trees_only_in_float32() -> Case:
    """skl2onnx's double graph for the exponential loss mixes float and double (onnxruntime refuses it); in float32 the
    trees would read scaled values computed in float32, which can cross a split the estimator's float64 scaling does not."""
    return risk_case(make_pipeline(StandardScaler(), GradientBoostingClassifier(loss="exponential", n_estimators=20, random_state=0)))


def nullable_linear() -> Case:
    case = risk_case(LogisticRegression(max_iter=500))
    return Case(case.model, case.sample, rows, {**FEATURE_OVERRIDES, "bmi": {"nullable": True}}, CLASS_LABELS)


def forest_fitted_on_missing_values() -> Case:
    """Splits at infinity (scikit-learn's missing-value splits): skl2onnx's double thresholds would never return."""
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(400, 3))
    target = (matrix[:, 0] + matrix[:, 1] > 0).astype(int)
    matrix[rng.random(matrix.shape) < 0.2] = np.nan
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(matrix, target)
    return Case(model, pd.DataFrame(np.nan_to_num(matrix[:80]), columns=["a", "b", "c"]), rows)


def forest_with_a_nullable_feature() -> Case:
    case = risk_case(RandomForestClassifier(n_estimators=10, random_state=0))
    return Case(case.model, case.sample, rows, {**FEATURE_OVERRIDES, "bmi": {"nullable": True}}, CLASS_LABELS)


FALLBACKS: dict[str, tuple[Callable[[], Case], str]] = {
    "hgb_categorical": (categorical_hgb, "HistGradientBoosting with categorical splits"),
    "text_pipeline": (text_pipeline, TEXT_SKIPPED),
    "converter_fails": (unconvertible, "skl2onnx cannot convert this model: MissingShapeCalculator"),
    "trees_only_in_float32": (scaled_trees_only_in_float32, "a tree model that converts only with float32 inputs stays on the reference"),
    "reference_refuses_a_missing_value": (nullable_linear, "parity: the reference model refuses a missing 'bmi'"),
    "trees_fitted_on_missing_values": (forest_fitted_on_missing_values, f"{TREE_MISSING_VALUES} (splits at infinity)"),
    "missing_values_would_reach_trees": (forest_with_a_nullable_feature, f"{TREE_MISSING_VALUES} (nullable: bmi)"),
}


def test_a_model_that_raises_on_a_missing_value_passes_its_trial_with_a_warning(
    signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    """The trial's null record makes this reference model raise: an error answer in the server, not a crash."""
    verified = verify_bundle(pack(nullable_linear(), tmp_path / "bundle", signing_key), trusted_keyring)
    trial = TrialRunner().run(verified.path, runtime="auto", trusted_types=(), allow_pickle=False, timeout=60, memory=4 << 30)
    assert trial.refused is None
    assert trial.rows > 0
    assert "ValueError" in trial.raised
    assert "calls raised ValueError" in trial.summary


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_models_that_do_not_compile_exactly_pack_without_a_compiled_form_and_say_why(
    name: str, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    make, reason = FALLBACKS[name]
    case = make()
    bundle = pack(case, tmp_path / "bundle", signing_key)
    meta = metadata_of(bundle)
    assert meta.compiled is None
    assert meta.compiled_skipped is not None
    assert reason in meta.compiled_skipped
    assert not (bundle / "model.onnx").exists()
    model = serve(bundle, trusted_keyring)
    assert (model.runtime_name, model.compiled_skipped) == ("scikit-learn", meta.compiled_skipped)
    outputs = model.predict_batch(client_records(model, case.sample))
    expected = np.asarray(case.model.predict(case.to_input(case.sample))).tolist()
    answered = [output.model_dump()["prediction"] for output in outputs]
    if meta.output.task == "regression":
        assert answered == pytest.approx(expected, rel=1e-9)
    else:
        answer_of = meta.output.answers()  # the declared label, else the class value with its type
        assert [(type(value), value) for value in answered] == [(type(answer_of[value]), answer_of[value]) for value in expected]


def test_a_converter_output_that_disagrees_is_refused(
    monkeypatch: pytest.MonkeyPatch, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    case = risk_case(LogisticRegression(max_iter=500))
    frame, target = make_training_frame(seed=7)
    other = LogisticRegression(max_iter=500).fit(rows(frame), 1 - target)
    monkeypatch.setattr(compiler_module, "export_compiled", lambda estimator, model_input, double=True: export_onnx(other, model_input))
    meta = metadata_of(pack(case, tmp_path / "bundle", signing_key))
    assert meta.compiled is None
    assert meta.compiled_skipped is not None
    assert meta.compiled_skipped.startswith("parity: labels agree on ")
    assert meta.compiled_skipped.endswith(f"of {len(case.sample)} sample rows")


def test_probabilities_beyond_the_tolerance_are_refused(
    monkeypatch: pytest.MonkeyPatch, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    monkeypatch.setattr(compiler_module, "COMPILED_TOLERANCE", 1e-30)
    bundle = pack(risk_case(LogisticRegression(max_iter=500)), tmp_path / "bundle", signing_key)
    meta = metadata_of(bundle)
    assert meta.compiled is None
    assert meta.compiled_skipped is not None
    assert meta.compiled_skipped.startswith("parity: max |Δp| ")
    assert meta.compiled_skipped.endswith("> 1e-30")
    assert serve(bundle, trusted_keyring).runtime_name == "scikit-learn"


def test_pack_can_leave_the_compiled_form_out(signing_key: keys.SigningKey, tmp_path: Path) -> None:
    meta = metadata_of(pack(risk_case(LogisticRegression(max_iter=500)), tmp_path / "bundle", signing_key, compiled=False))
    assert (meta.compiled, meta.compiled_skipped) == (None, NOT_REQUESTED)


def test_an_onnx_bundle_is_its_own_compiled_form(signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path) -> None:
    bundle = pack(risk_case(LogisticRegression(max_iter=500)), tmp_path / "bundle", signing_key, format="onnx")
    meta = metadata_of(bundle)
    assert (meta.model_file, meta.compiled, meta.compiled_skipped) == ("model.onnx", None, None)
    model = serve(bundle, trusted_keyring, runtime="reference")
    assert (model.runtime_name, model.compiled_skipped) == ("onnxruntime", None)


# --- the runtime setting -----------------------------------------------------------------------------------------------


def test_runtime_reference_serves_the_estimator_and_says_so(risk_bundle: Path, trusted_keyring: Keyring) -> None:
    model = serve(risk_bundle, trusted_keyring, runtime="reference")
    assert (model.runtime_name, model.compiled_skipped) == ("scikit-learn", "runtime: reference in the service configuration")
    case = risk_case(LogisticRegression(max_iter=500))
    answered = [output.model_dump()["prediction"] for output in model.predict_batch(client_records(model, case.sample))]
    assert answered == [CLASS_LABELS[value] for value in case.model.predict(rows(case.sample)).tolist()]


def test_runtime_compiled_without_a_compiled_form_is_a_clear_error(
    signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    bundle = pack(text_pipeline(), tmp_path / "bundle", signing_key)
    with pytest.raises(ConfigError, match=r"requires the compiled runtime \(runtime: compiled\).*text/records input stays"):
        serve(bundle, trusted_keyring, runtime="compiled")
    assert serve(bundle, trusted_keyring).runtime_name == "scikit-learn"


def test_recorded_parity_beyond_the_servers_tolerance_serves_the_reference(
    risk_bundle: Path, signing_key: keys.SigningKey, trusted_keyring: Keyring
) -> None:
    def loosen(metadata: dict[str, Any]) -> None:
        metadata["compiled"]["parity"]["max_abs_probability_diff"] = 1e-3
        metadata["compiled"]["parity"]["tolerance"] = 1e-2

    resign(risk_bundle, signing_key, loosen)
    model = serve(risk_bundle, trusted_keyring)
    assert (model.runtime_name, model.compiled_skipped) == ("scikit-learn", "recorded parity: max |Δp| 0.001 > 1e-05")
    with pytest.raises(ConfigError, match=r"max \|Δp\| 0.001 > 1e-05"):
        serve(risk_bundle, trusted_keyring, runtime="compiled")
    assert choose_runtime(metadata_of(risk_bundle), "auto", tolerance=1e-2).compiled


def test_bundles_from_before_compiled_forms_still_load(risk_bundle: Path, signing_key: keys.SigningKey, trusted_keyring: Keyring) -> None:
    def old(metadata: dict[str, Any]) -> None:
        del metadata["compiled"], metadata["compiled_skipped"]

    (risk_bundle / "model.onnx").unlink()
    model = serve(resign(risk_bundle, signing_key, old), trusted_keyring)
    assert (model.runtime_name, model.compiled_skipped) == ("scikit-learn", "the bundle has no compiled model")


# --- verification ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("named", ["model.skops", "other.onnx", "../model.onnx"])
def test_a_compiled_file_other_than_the_signed_model_onnx_is_refused(
    named: str, risk_bundle: Path, signing_key: keys.SigningKey, trusted_keyring: Keyring
) -> None:
    if named == "other.onnx":
        (risk_bundle / "model.onnx").rename(risk_bundle / named)

    def rename(metadata: dict[str, Any]) -> None:
        metadata["compiled"]["file"] = named

    resign(risk_bundle, signing_key, rename)
    with pytest.raises(BundleFormatError, match=re.escape(f"compiled file {named!r}, which is not the signed model.onnx")):
        verify_bundle(risk_bundle, trusted_keyring)


def test_a_compiled_record_without_its_file_is_refused(risk_bundle: Path, signing_key: keys.SigningKey, trusted_keyring: Keyring) -> None:
    (risk_bundle / "model.onnx").unlink()
    resign(risk_bundle, signing_key, lambda metadata: None)
    with pytest.raises(BundleFormatError, match=r"compiled file 'model\.onnx', which is not the signed model\.onnx"):
        verify_bundle(risk_bundle, trusted_keyring)


def test_an_onnx_bundle_cannot_name_a_compiled_form(
    risk_bundle: Path, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    record = metadata_of(risk_bundle).compiled
    bundle = pack(risk_case(LogisticRegression(max_iter=500)), tmp_path / "onnx", signing_key, format="onnx")
    resign(bundle, signing_key, lambda metadata: metadata.update(compiled=record.model_dump(mode="json")))  # type: ignore[union-attr]
    with pytest.raises(BundleFormatError, match="an ONNX bundle's model file is its compiled form"):
        verify_bundle(bundle, trusted_keyring)


def test_a_changed_compiled_file_fails_its_digest(risk_bundle: Path, trusted_keyring: Keyring) -> None:
    from sealserve.errors import DigestMismatchError

    data = bytearray((risk_bundle / "model.onnx").read_bytes())
    data[-1] ^= 1
    (risk_bundle / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=r"model\.onnx"):
        verify_bundle(risk_bundle, trusted_keyring)


# --- the registry and the status API -----------------------------------------------------------------------------------


def test_registry_reports_the_runtime_and_stays_unready_when_the_compiled_runtime_is_required(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    space.publish("fast", "1.0.0")
    space.publish("slow", "1.0.0", compiled=False)
    space.publish("strict", "1.0.0", compiled=False)
    sources = [
        BundleSource(name="fast", store_url=space.store.url, keyring=space.keyring, trial_prediction=False),
        BundleSource(name="slow", store_url=space.store.url, keyring=space.keyring, trial_prediction=False),
        BundleSource(name="strict", store_url=space.store.url, keyring=space.keyring, runtime="compiled", trial_prediction=False),
    ]
    registry = ModelRegistry(sources)
    registry.load_all()
    fast, slow, strict = (describe_state(registry.state(name)) for name in ("fast", "slow", "strict"))
    assert (fast["ready"], fast["runtime"], "compiled_skipped" in fast) == (True, "onnxruntime", False)
    assert (slow["ready"], slow["runtime"], slow["compiled_skipped"]) == (True, "scikit-learn", NOT_REQUESTED)
    assert strict["ready"] is False
    assert "runtime: compiled" in strict["error"]
    assert NOT_REQUESTED in strict["error"]
    assert "runtime" not in strict


def test_the_status_endpoint_reports_the_runtime(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from sealserve.serve import create_app, load_config
    from tests.support.server import wait_until

    space = Workspace.create(tmp_path)
    space.publish("fast", "1.0.0")
    space.publish("slow", "1.0.0")
    config = space.config(tmp_path / "service.yaml", {"name": "fast"}, {"name": "slow", "runtime": "reference"})
    with TestClient(create_app(load_config(config)), raise_server_exceptions=False) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=30)
        fast, slow = client.get("/api/models/fast").json(), client.get("/api/models/slow").json()
        listed = {item["name"]: item for item in client.get("/api/models").json()["models"]}
        response = client.post("/api/models/fast/prediction", json={"size": 7.5, "count": 3, "color": "BLUE"})
    assert (fast["runtime"], "compiled_skipped" in fast) == ("onnxruntime", False)
    assert (slow["runtime"], slow["compiled_skipped"]) == ("scikit-learn", "runtime: reference in the service configuration")
    assert listed["fast"]["runtime"] == "onnxruntime"
    assert fast["metadata"]["compiled"]["parity"]["label_agreement"] == 1.0
    assert response.status_code == 200, response.text


def test_a_reference_file_the_policy_refuses_refuses_the_bundle_even_when_the_compiled_form_would_serve(
    risk_bundle: Path, signing_key: keys.SigningKey, trusted_keyring: Keyring
) -> None:
    assert serve(risk_bundle, trusted_keyring).runtime_name == "onnxruntime"  # positive control: the untouched bundle serves compiled
    resign(risk_bundle, signing_key, lambda metadata: metadata.update(required_types=["posix.system"]))
    with pytest.raises(UnsafeModelError, match=r"outside the allow-list: posix\.system"):
        serve(risk_bundle, trusted_keyring)


def test_pickle_bundles_carry_no_compiled_form(signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path) -> None:
    case = risk_case(LogisticRegression(max_iter=500))
    bundle = pack(case, tmp_path / "pickled", signing_key, format="joblib", allow_pickle=True)
    metadata = metadata_of(bundle)
    assert (metadata.compiled, metadata.compiled_skipped) == (None, PICKLE_SERVES_ITSELF)
    assert not (bundle / "model.onnx").exists()
