"""pack: a fitted model plus a training sample becomes a signed, self-describing bundle."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LinearRegression, LogisticRegression

from sealserve.bundle import envelope, files, keys
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import BundleMetadata, FeatureKind, InputShape, ModelFormat
from sealserve.errors import BundleFormatError, UnsafeModelError
from sealserve.packing.build import pack
from sealserve.packing.onnx.export import check_parity, export_onnx
from sealserve.runtime.predict import runtime_for
from sealserve.trust.verify import verify_bundle
from tests.conftest import CLASS_LABELS, FEATURE_OVERRIDES, make_training_frame


def metadata_of(bundle: Path) -> BundleMetadata:
    return BundleMetadata.model_validate_json((bundle / "sealserve.json").read_bytes())


def test_bundle_holds_exactly_the_model_its_compiled_form_metadata_reports_and_signature(packed_bundle: Path) -> None:
    assert sorted(files.list_files(packed_bundle)) == ["model.onnx", "model.sig", "model.skops", "reports/profile.html", "sealserve.json"]


def test_signature_covers_every_other_file(packed_bundle: Path) -> None:
    parsed = envelope.parse((packed_bundle / "model.sig").read_bytes())
    listed = files.list_files(packed_bundle)
    del listed["model.sig"]
    assert envelope.signed_digests(parsed.payload) == files.digest_files(listed)


def test_metadata_records_identity_schema_classes_statistics_and_provenance(packed_bundle: Path, training_frame: pd.DataFrame) -> None:
    meta = metadata_of(packed_bundle)
    assert (meta.name, meta.version, meta.format, meta.model_file) == ("risk", "1.0.0", ModelFormat.SKOPS, "model.skops")
    assert meta.feature_names == ["age", "bmi", "general_health"]
    assert [f.kind for f in meta.features] == [FeatureKind.INTEGER, FeatureKind.NUMBER, FeatureKind.CATEGORY]
    assert meta.input_shape is InputShape.ROWS
    assert meta.estimator == "sklearn.linear_model._logistic.LogisticRegression"
    assert meta.required_types == []
    assert meta.features[2].categories == FEATURE_OVERRIDES["general_health"]["categories"]
    assert [(c.value, c.label) for c in meta.output.classes] == [(0, "low_risk"), (1, "high_risk")]
    assert meta.output.task == "classification"
    assert meta.output.probabilities
    assert {"python", "scikit-learn", "numpy", "skops", "sealserve"} <= set(meta.library_versions)
    assert set(meta.statistics) == {"age", "bmi", "general_health"}
    assert meta.statistics["age"].count == len(training_frame)
    assert meta.metrics == {"auc": 0.9}
    assert meta.reports == ["reports/profile.html"]
    assert list(meta.input_schema["properties"]) == meta.feature_names
    assert meta.output_schema["properties"]["prediction"]["enum"] == ["low_risk", "high_risk"]


def test_zip_and_folder_bundles_verify_the_same(
    fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    archive = pack(fitted_model, name="risk", version="1.0.0", private_key=signing_key, out=tmp_path / "risk.zip", sample=training_frame)
    folder = tmp_path / "unzipped"
    folder.mkdir()
    files.extract_zip(archive, folder)
    from_zip, from_folder = verify_bundle(archive, trusted_keyring), verify_bundle(folder, trusted_keyring)
    try:
        assert from_zip.digest == from_folder.digest
        assert from_zip.file_digests == from_folder.file_digests
        assert from_zip.metadata == from_folder.metadata
    finally:
        from_zip.discard()
        from_folder.discard()


def test_existing_outputs_are_never_overwritten(
    packed_bundle: Path, fitted_model: LogisticRegression, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    with pytest.raises(BundleFormatError, match="already exists and is not empty"):
        pack(fitted_model, name="risk", version="2.0.0", private_key=signing_key, out=packed_bundle)
    archive = tmp_path / "taken.zip"
    archive.write_bytes(b"someone else's file")
    with pytest.raises(BundleFormatError, match="already exists"):
        pack(fitted_model, name="risk", version="2.0.0", private_key=signing_key, out=archive)
    assert archive.read_bytes() == b"someone else's file"


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("Risk Model", "1.0.0", "model name 'Risk Model' must match"),
        ("../risk", "1.0.0", "model name '../risk' must match"),
        ("risk", "latest", "version 'latest' is not a PEP 440 version"),
        ("risk", "1.0.0+local/../x", "not a PEP 440 version"),
    ],
)
def test_names_and_versions_that_are_not_safe_store_paths_are_refused(
    fitted_model: LogisticRegression, signing_key: keys.SigningKey, tmp_path: Path, name: str, version: str, message: str
) -> None:
    with pytest.raises(BundleFormatError, match=message):
        pack(fitted_model, name=name, version=version, private_key=signing_key, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_feature_overrides_with_typos_are_refused(
    fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    with pytest.raises(BundleFormatError, match="feature 'bmi': descripton"):
        pack(
            fitted_model,
            name="risk",
            version="1.0.0",
            private_key=signing_key,
            out=tmp_path / "a",
            sample=training_frame,
            features={"bmi": {"descripton": "typo"}},
        )
    with pytest.raises(BundleFormatError, match=r"\['weight'\]"):
        pack(fitted_model, name="risk", version="1.0.0", private_key=signing_key, out=tmp_path / "b", features={"weight": {}})


def test_without_a_sample_features_are_named_from_the_model(
    fitted_model: LogisticRegression, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    bundle = pack(fitted_model, name="risk", version="1.0.0", private_key=signing_key, out=tmp_path / "b")
    meta = metadata_of(bundle)
    assert meta.feature_names == ["x0", "x1", "x2"]
    assert all(f.kind is FeatureKind.NUMBER and f.minimum is None for f in meta.features)
    assert meta.statistics == {}


def test_a_sample_whose_columns_the_model_cannot_use_is_refused(
    fitted_model: LogisticRegression, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    with pytest.raises(BundleFormatError, match="the model takes 3 features; the sample has 1 columns"):
        pack(
            fitted_model,
            name="risk",
            version="1.0.0",
            private_key=signing_key,
            out=tmp_path / "b",
            sample=pd.DataFrame({"only": [1.0, 2.0]}),
        )


def test_pack_reads_a_skops_file_and_keys_from_files(
    fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    model_file = tmp_path / "model.skops"
    skops.io.dump(fitted_model, model_file)
    key_file = tmp_path / "key.pem"
    keys.write_private_key(signing_key, key_file)
    bundle = pack(model_file, name="risk", version="1.0.0", private_key=key_file, out=tmp_path / "b", sample=training_frame)
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        model = verified.load()
        rows = training_frame.to_numpy(dtype="float64")
        assert np.array_equal(model.predict(rows), fitted_model.predict(rows))
    finally:
        verified.discard()


def test_joblib_needs_allow_pickle_at_pack_and_at_load(
    fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeModelError, match="pass allow_pickle=True"):
        pack(fitted_model, name="risk", version="1.0.0", private_key=signing_key, out=tmp_path / "refused", format="joblib")
    pickled = tmp_path / "model.joblib"
    joblib.dump(fitted_model, pickled)
    with pytest.raises(UnsafeModelError, match=r"model.joblib is a pickle"):
        pack(pickled, name="risk", version="1.0.0", private_key=signing_key, out=tmp_path / "refused2")
    assert not (tmp_path / "refused").exists()
    assert not (tmp_path / "refused2").exists()

    bundle = pack(
        pickled,
        name="risk",
        version="1.0.0",
        private_key=signing_key,
        out=tmp_path / "b",
        sample=training_frame,
        format="joblib",
        allow_pickle=True,
    )
    assert (bundle / "model.joblib").is_file()
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        with pytest.raises(UnsafeModelError, match="needs allow_pickle: true"):
            verified.load()
        rows = training_frame.to_numpy(dtype="float64")
        assert np.array_equal(verified.load(allow_pickle=True).predict(rows), fitted_model.predict(rows))
    finally:
        verified.discard()


def test_onnx_bundle_predicts_like_the_estimator(
    fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    bundle = pack(
        fitted_model,
        name="risk",
        version="1.0.0",
        private_key=signing_key,
        out=tmp_path / "b",
        sample=training_frame,
        format="onnx",
        class_labels=CLASS_LABELS,
    )
    assert metadata_of(bundle).model_file == "model.onnx"
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        session = verified.load()
        rows = training_frame.to_numpy(dtype="float32")
        labels, probabilities = session.run(None, {session.get_inputs()[0].name: rows})
        assert np.array_equal(labels, fitted_model.predict(rows.astype("float64")))
        assert np.allclose(probabilities, fitted_model.predict_proba(rows.astype("float64")), atol=1e-4)
    finally:
        verified.discard()


def test_onnx_export_that_disagrees_with_the_estimator_is_refused(fitted_model: LogisticRegression) -> None:
    frame, target = make_training_frame(seed=7)
    other = LogisticRegression().fit(frame.to_numpy(dtype="float64"), 1 - target)
    rows = frame.to_numpy(dtype="float64")
    with pytest.raises(BundleFormatError, match="ONNX output differs from the estimator"):
        check_parity(fitted_model, export_onnx(other, rows), rows)


def test_an_onnx_file_needs_class_labels(
    fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(export_onnx(fitted_model, training_frame.to_numpy(dtype="float64")))
    with pytest.raises(BundleFormatError, match="needs class_labels"):
        pack(onnx_file, name="risk", version="1.0.0", private_key=signing_key, out=tmp_path / "b", format="onnx", sample=training_frame)
    with pytest.raises(BundleFormatError, match="pack it with format onnx"):
        pack(onnx_file, name="risk", version="1.0.0", private_key=signing_key, out=tmp_path / "c", format="skops")


def test_a_ready_made_onnx_regressor_packs_without_class_labels_and_serves(
    training_frame: pd.DataFrame, signing_key: keys.SigningKey, trusted_keyring: Keyring, tmp_path: Path
) -> None:
    rows = training_frame.to_numpy(dtype="float64")
    regressor = LinearRegression().fit(rows, rows @ np.array([0.5, -1.0, 2.0]))
    onnx_file = tmp_path / "regressor.onnx"
    onnx_file.write_bytes(export_onnx(regressor, rows))
    bundle = pack(onnx_file, name="price", version="1.0.0", private_key=signing_key, out=tmp_path / "b", sample=training_frame)
    assert (metadata_of(bundle).format, metadata_of(bundle).output.task) == (ModelFormat.ONNX, "regression")
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        served = runtime_for(verified.load(), verified.metadata)(rows)
        assert np.allclose(served.values, regressor.predict(rows), rtol=1e-4)
    finally:
        verified.discard()


def test_two_reports_with_the_same_name_are_refused(fitted_model: LogisticRegression, signing_key: keys.SigningKey, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "roc.png").write_bytes(b"1")
    (tmp_path / "b" / "roc.png").write_bytes(b"2")
    with pytest.raises(BundleFormatError, match=r"two reports are named roc.png"):
        pack(
            fitted_model,
            name="risk",
            version="1.0.0",
            private_key=signing_key,
            out=tmp_path / "out",
            reports=[tmp_path / "a" / "roc.png", tmp_path / "b" / "roc.png"],
        )


def test_metadata_is_plain_json(packed_bundle: Path) -> None:
    json.loads((packed_bundle / "sealserve.json").read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
