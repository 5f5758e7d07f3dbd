"""pack detects each model kind, refuses what cannot be served with a reason, and proves the answer shape through the
server's own encoders: a prediction the protocols cannot answer fails at pack and in the trial, never in production."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import DBSCAN, KMeans
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import Ridge
from sklearn.multioutput import MultiOutputRegressor

import sealserve.packing.build
from sealserve.bundle import keys
from sealserve.bundle.metadata import BundleMetadata, OutputSpec
from sealserve.bundle.schema import output_model
from sealserve.errors import BundleFormatError
from sealserve.packing.build import pack
from sealserve.runtime.answer_check import check_answers
from sealserve.runtime.answers import Classes, Predictions
from sealserve.runtime.build import build_model
from sealserve.runtime.encoders import encoders_for
from sealserve.serve.lifecycle.trial_child import predict as trial_predict
from sealserve.trust.verify import read_metadata

FEATURES = ["a", "b", "c"]


def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    return pd.DataFrame(X, columns=FEATURES), np.column_stack([X[:, 0] + X[:, 1], X[:, 2]])


def packed(model: Any, tmp_path: Path, key: keys.SigningKey, **options: Any) -> Path:
    sample, _ = data()
    return pack(model, name="kind", version="1.0.0", private_key=key, out=tmp_path / "bundle", sample=sample, **options)


def multi_ridge() -> MultiOutputRegressor:
    sample, targets = data()
    return MultiOutputRegressor(Ridge()).fit(sample.to_numpy(), targets)


def test_a_multi_output_bundle_names_its_targets_and_skips_the_compiled_form(tmp_path: Path, signing_key: keys.SigningKey) -> None:
    metadata = read_metadata(packed(multi_ridge(), tmp_path, signing_key, targets=["sum", "last"]))
    assert [(target.name, target.task) for target in metadata.output.targets] == [("sum", "regression"), ("last", "regression")]
    assert metadata.compiled is None
    assert metadata.compiled_skipped == (
        "a multi_output model serves its reference model (the compiled form covers classification and regression)"
    )
    assert list(metadata.output_schema["$defs"]["KindOutputTargets"]["properties"]) == ["sum", "last"]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["only"], r"the model predicts 2 targets per row, but 1 were named \(only\): name each, in the model's order, with --target"),
        (["predict", "other"], "a target cannot be named predict"),
    ],
)
def test_target_names_that_do_not_fit_are_refused(tmp_path: Path, signing_key: keys.SigningKey, targets: list[str], message: str) -> None:
    with pytest.raises(BundleFormatError, match=message):
        packed(multi_ridge(), tmp_path, signing_key, targets=targets)


def test_several_targets_for_a_single_output_model_are_refused(tmp_path: Path, signing_key: keys.SigningKey) -> None:
    sample, targets = data()
    with pytest.raises(BundleFormatError, match=r"2 targets are named \(x, y\), but the model predicts one value per row"):
        packed(Ridge().fit(sample.to_numpy(), targets[:, 0]), tmp_path, signing_key, targets=["x", "y"])


def test_a_clusterer_without_predict_is_refused_saying_why(tmp_path: Path, signing_key: keys.SigningKey) -> None:
    sample, _ = data()
    with pytest.raises(BundleFormatError, match="DBSCAN has no predict method: sealserve serves models that predict new rows"):
        packed(DBSCAN().fit(sample.to_numpy()), tmp_path, signing_key)


def test_the_onnx_format_refuses_a_new_task(tmp_path: Path, signing_key: keys.SigningKey) -> None:
    sample, _ = data()
    with pytest.raises(BundleFormatError, match="the onnx format serves classification and regression; pack this clustering model"):
        packed(KMeans(n_clusters=2, n_init=1).fit(sample.to_numpy()), tmp_path, signing_key, format="onnx")


def test_an_outlier_detector_records_its_score_method(tmp_path: Path, signing_key: keys.SigningKey) -> None:
    sample, _ = data()
    metadata = read_metadata(packed(IsolationForest(n_estimators=5, random_state=0).fit(sample.to_numpy()), tmp_path, signing_key))
    assert (metadata.output.task, metadata.output.score) == ("outlier_detection", "score_samples")


def test_pack_refuses_a_prediction_the_protocols_cannot_answer(
    tmp_path: Path, signing_key: keys.SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug this issue opened with: a multi-output model recorded as a regressor. The round trip encodes the reloaded
    model's answer as the server would, so the bundle is refused instead of answering every request 500."""
    monkeypatch.setattr(sealserve.packing.build, "output_spec", lambda *args: OutputSpec(task="regression"))
    with pytest.raises(BundleFormatError, match="the model's prediction cannot be answered on the native API"):
        packed(multi_ridge(), tmp_path, signing_key)


def test_the_trial_fails_a_model_whose_answer_cannot_be_encoded(tmp_path: Path, signing_key: keys.SigningKey) -> None:
    bundle = packed(multi_ridge(), tmp_path, signing_key)
    metadata = read_metadata(bundle)
    model = build_model(bundle, metadata, runtime="auto", trusted_types=(), allow_pickle=False)
    assert trial_predict(model) == (6, [])  # three records as a batch, then one by one
    mislabelled = BundleMetadata.model_validate(
        metadata.model_dump() | {"schema_version": 1, "output": OutputSpec(task="regression"), "compiled_skipped": None}
    )
    broken = build_model(bundle, mislabelled, runtime="auto", trusted_types=(), allow_pickle=False)
    with pytest.raises(BundleFormatError, match="cannot be answered on the native API"):
        trial_predict(broken)


@pytest.mark.parametrize(
    ("output", "values", "scores", "protocol"),
    [
        (OutputSpec(task="regression"), np.ones((2, 2)), None, "the native API"),
        (OutputSpec(task="outlier_detection", score="score_samples"), np.array([1, -1]), None, "the native API"),
        (OutputSpec(task="clustering"), np.array(["x", "y"], dtype=object), None, "the native API"),
    ],
    ids=["vector-as-number", "no-scores", "text-cluster"],
)
def test_check_answers_names_the_protocol_that_cannot_answer(
    output: OutputSpec, values: np.ndarray, scores: np.ndarray | None, protocol: str, packed_bundle: Path
) -> None:
    metadata = read_metadata(packed_bundle).model_copy(update={"output": output, "schema_version": output.format_major})
    answer = Predictions(Classes(metadata), values, None, scores)
    with pytest.raises(BundleFormatError, match=f"cannot be answered on {protocol}"):
        check_answers(encoders_for(output), output_model("kind", output), answer)


def test_the_public_predict_answers_a_model_per_row_keyed_by_target(tmp_path: Path, signing_key: keys.SigningKey) -> None:
    bundle = packed(multi_ridge(), tmp_path, signing_key, targets=["sum", "last"])
    model = build_model(bundle, read_metadata(bundle), runtime="auto", trusted_types=(), allow_pickle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        answer = model.predict({"a": 1.0, "b": 2.0, "c": 3.0}).model_dump(mode="json")
    expected = multi_ridge().predict(np.array([[1.0, 2.0, 3.0]]))[0].tolist()
    assert list(answer["prediction"]) == ["sum", "last"]
    np.testing.assert_allclose(list(answer["prediction"].values()), expected, rtol=1e-12)
