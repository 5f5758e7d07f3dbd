"""`sealserve pack` as a user runs it: a DataFrame pipeline packs from a CSV without warnings, every mistake is one line."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sealserve.bundle import keyring
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import BundleMetadata, InputShape, ModelFormat
from sealserve.runtime.bundle_model import BundleModel
from sealserve.trust.verify import verify_bundle
from tests.support.server import SEALSERVE


@pytest.fixture(scope="module")
def census(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A census-style pipeline selecting string and numeric columns by name, its training CSV (with the label) and a key."""
    root = tmp_path_factory.mktemp("census")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 82, 150),
            "workclass": rng.choice(["Private", "State-gov", "Self-emp"], 150),
            "hours_per_week": rng.uniform(10, 60, 150).round(1),
        }
    )
    frame["income"] = np.where((frame.age > 40) & (frame.workclass != "State-gov"), ">50K", "<=50K")
    columns = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass"]), ("num", StandardScaler(), ["age", "hours_per_week"])]
    )
    model = make_pipeline(columns, LogisticRegression()).fit(frame.drop(columns=["income"]), frame["income"])
    skops.io.dump(model, root / "model.skops")
    frame.to_csv(root / "train.csv", index=False)
    keyring.create_signing_key(root / "key.pem", root / "keyring.json", kid="cli")
    return root


def pack(root: Path, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [SEALSERVE, "pack", "model.skops", "--name", "census", "--version", "1.0.0", "--private-key", "key.pem", "--out", out, *extra]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False, timeout=120)


def test_a_dataframe_pipeline_packs_from_a_csv_with_its_label_dropped_and_no_warnings(census: Path) -> None:
    result = pack(census, "ok.zip", "--sample", "train.csv", "--target", "income")
    assert result.returncode == 0, result.stderr
    assert "feature names" not in result.stderr
    assert "Warning" not in result.stderr
    verified = subprocess.run(
        [SEALSERVE, "verify", "ok.zip", "--keyring", "keyring.json"], cwd=census, capture_output=True, text=True, check=False, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    with zipfile.ZipFile(census / "ok.zip") as archive:
        metadata = BundleMetadata.model_validate_json(archive.read("sealserve.json"))
    assert metadata.input_shape is InputShape.FRAME
    assert [feature.name for feature in metadata.features] == ["age", "workclass", "hours_per_week"]
    assert [item.value for item in metadata.output.classes] == ["<=50K", ">50K"]


def test_the_same_pipeline_packs_to_onnx_with_one_input_per_column_and_answers_like_the_estimator(census: Path) -> None:
    result = pack(census, "onnx.zip", "--sample", "train.csv", "--target", "income", "--format", "onnx")
    assert result.returncode == 0, result.stderr
    verified = verify_bundle(census / "onnx.zip", Keyring.load(census / "keyring.json"))
    try:
        model = BundleModel(verified.metadata, verified.load())
    finally:
        verified.discard()
    assert verified.metadata.format is ModelFormat.ONNX
    frame = pd.read_csv(census / "train.csv").drop(columns=["income"])
    records = [model.input_schema.model_validate(record) for record in frame.to_dict("records")]
    expected = skops.io.load(census / "model.skops", trusted=skops.io.get_untrusted_types(file=census / "model.skops")).predict(frame)
    assert [output.prediction for output in model.predict_batch(records)] == list(expected)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--sample", "train.csv", "--target", "salary"), "--target 'salary' is not a column of train.csv"),
        (("--sample", "missing.csv"), "sample file missing.csv does not exist"),
        (("--sample", "train.csv", "--target", "income", "--features", "broken.json"), "features file broken.json is not valid JSON"),
        (("--sample", "train.csv", "--target", "income", "--features", "list.json"), "must be an object of per-feature objects"),
        (("--sample", "train.csv"), "the sample has columns the model was not fitted on: ['income']"),
        (("--target", "income"), "--target names a column of --sample"),
        (("--sample", "train.csv", "--target", "income", "--format", "xgboost"), "the xgboost format holds xgboost models only"),
    ],
)
def test_every_mistake_is_one_error_line_and_exit_status_1(census: Path, extra: tuple[str, ...], message: str) -> None:
    (census / "broken.json").write_text('{"age": {"kind": ')
    (census / "list.json").write_text("[1, 2]")
    result = pack(census, "refused.zip", *extra)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (census / "refused.zip").exists()


def test_background_rows_are_packed_signed_and_explain_an_onnx_bundle(census: Path) -> None:
    import orjson

    from sealserve.runtime.build import build_model
    from sealserve.runtime.explain.explainer import Explainer

    result = pack(census, "background.zip", "--sample", "train.csv", "--target", "income", "--format", "onnx", "--background", "12")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(census / "background.zip") as archive:
        rows = orjson.loads(archive.read("explain/background.json"))
    assert len(rows) == 12
    assert {row["workclass"] for row in rows} <= {"Private", "State-gov", "Self-emp"}  # as clients send them
    verified = verify_bundle(census / "background.zip", Keyring.load(census / "keyring.json"))  # the file is signed
    try:
        model = build_model(verified.path, verified.metadata, runtime="auto", trusted_types=(), allow_pickle=False)
    finally:
        verified.discard()
    frame = pd.read_csv(census / "train.csv").drop(columns=["income"])
    explained = Explainer(model, max_evaluations=500).explain(frame.head(2).to_dict("records"))
    assert explained.method == "permutation"
    probabilities = model.predict_records(frame.head(2).to_dict("records")).probabilities
    np.testing.assert_allclose(explained.base + explained.contributions.sum(axis=2), probabilities, atol=1e-6)
