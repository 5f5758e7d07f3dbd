"""Pipelines ending in an XGBoost or LightGBM estimator pack split (skops steps + the booster's own format, bundle format
3) and load back without any booster __setstate__; XGBoost UBJSON and pickled boosters are read by sealserve's own
bounded checks before the native loader sees a byte."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import skops.io
import xgboost
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import sealserve
from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring
from sealserve.errors import BundleFormatError, NewerFormatError
from sealserve.packing.boosters import read_skops_with_boosters
from sealserve.packing.build import sign_folder
from sealserve.trust.boosters.summary import Malformed
from sealserve.trust.boosters.ubjson import MAX_DEPTH, read_ubjson
from sealserve.trust.boosters.xgboost_json import ubjson_as_json
from sealserve.trust.load import load_joblib
from sealserve.trust.verify import verify_bundle

FEATURES = ["a", "b", "c"]


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(150, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def pipelines() -> dict[str, Pipeline]:
    X, y = data()
    return {
        "xgb-classifier": make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=6, max_depth=3)).fit(X, y),
        "xgb-regressor": make_pipeline(StandardScaler(), xgboost.XGBRegressor(n_estimators=6, max_depth=3)).fit(X, X[:, 2]),
        "lgbm-classifier": make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(n_estimators=6, verbose=-1)).fit(
            X, np.array(["no", "yes"])[y]
        ),
        "lgbm-regressor": make_pipeline(StandardScaler(), lightgbm.LGBMRegressor(n_estimators=6, verbose=-1)).fit(X, X[:, 1]),
    }


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, signing_key: keys.SigningKey) -> dict[str, tuple[Pipeline, Path]]:
    root = tmp_path_factory.mktemp("booster-pipelines")
    X, _ = data()
    sample = pd.DataFrame(X, columns=FEATURES)
    return {
        name: (model, sealserve.pack(model, name=name, version="1.0.0", private_key=signing_key, out=root / name, sample=sample))
        for name, model in pipelines().items()
    }


@pytest.mark.parametrize("name", ["xgb-classifier", "xgb-regressor", "lgbm-classifier", "lgbm-regressor"])
def test_a_pipeline_ending_in_a_booster_packs_split_and_loads_back_answering_as_fitted(
    packed: dict[str, tuple[Pipeline, Path]], trusted_keyring: Keyring, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, bundle = packed[name]
    library = "xgboost" if name.startswith("xgb") else "lightgbm"
    booster_file = "model.xgboost.json" if library == "xgboost" else "model.lightgbm.txt"
    assert sorted(path.name for path in bundle.iterdir()) == sorted(["model.sig", "model.skops", booster_file, "sealserve.json"])
    metadata = json.loads((bundle / "sealserve.json").read_text())
    step_name, step = model.steps[-1]
    assert metadata["schema_version"] == 3
    assert metadata["booster_step"] == {
        "step": step_name,
        "format": library,
        "file": booster_file,
        "estimator": f"{type(step).__module__}.{type(step).__qualname__}",
        "n_features": 3,
    }
    assert metadata["required_types"] == []  # the skops file holds no booster type: servers trust nothing extra
    assert metadata["compiled"] is None
    assert "serves its reference model" in metadata["compiled_skipped"]

    for cls in (xgboost.core.Booster, lightgbm.basic.Booster):  # loading never sets a booster's state
        monkeypatch.setattr(cls, "__setstate__", _forbidden, raising=False)
    verified = verify_bundle(bundle, trusted_keyring)
    try:
        loaded = verified.load()
    finally:
        verified.discard()
    X, _ = data()
    assert loaded.steps[-1][0] == step_name
    assert np.array_equal(loaded.predict(X), model.predict(X))
    if name.endswith("classifier"):
        assert np.array_equal(loaded.classes_, model.classes_)
        assert np.abs(loaded.predict_proba(X) - model.predict_proba(X)).max() <= 1e-12


def _forbidden(*_: Any) -> None:
    raise AssertionError("a booster's __setstate__ ran")


def test_a_server_reading_format_2_refuses_a_split_pipeline_by_name(
    packed: dict[str, tuple[Pipeline, Path]], trusted_keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sealserve.bundle.format_version.FORMAT_MAJOR", 2)  # a server of the release before
    with pytest.raises(NewerFormatError, match=r"bundle format 3 .* this server reads bundle format 2 and older"):
        verify_bundle(packed["xgb-classifier"][1], trusted_keyring)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(schema_version=2), "a pipeline with a booster step needs bundle format 3, not 2"),
        (lambda m: m["booster_step"].update(file="model.onnx"), "a xgboost step is stored as model.xgboost.json, not model.onnx"),
        (lambda m: m["booster_step"].update(step="scaler"), "is not a pipeline whose last step 'scaler' is left for model.xgboost.json"),
        (lambda m: m["booster_step"].update(estimator="xgboost.core.Booster"), "not xgboost.core.Booster"),
        (lambda m: m["booster_step"].update(n_features=4), "model.xgboost.json has 3 features; the metadata says 4"),
    ],
)
def test_a_booster_step_that_does_not_fit_its_files_is_refused(
    packed: dict[str, tuple[Pipeline, Path]],
    trusted_keyring: Keyring,
    signing_key: keys.SigningKey,
    tmp_path: Path,
    change: Any,
    message: str,
) -> None:
    bundle = shutil.copytree(packed["xgb-classifier"][1], tmp_path / "bundle")
    metadata = json.loads((bundle / "sealserve.json").read_text())
    change(metadata)
    (bundle / "sealserve.json").write_text(json.dumps(metadata))
    sign_folder(bundle, signing_key, subject="xgb-classifier")
    with pytest.raises(BundleFormatError, match=message):
        verify_bundle(bundle, trusted_keyring).load()


def test_the_booster_file_of_a_split_pipeline_is_signed_like_every_file(
    packed: dict[str, tuple[Pipeline, Path]], trusted_keyring: Keyring, tmp_path: Path
) -> None:
    bundle = shutil.copytree(packed["lgbm-regressor"][1], tmp_path / "bundle")
    text = (bundle / "model.lightgbm.txt").read_text()
    (bundle / "model.lightgbm.txt").write_text(text.replace("shrinkage=", "shrinkage=0", 1))
    with pytest.raises(Exception, match=r"SHA-256 mismatch for model\.lightgbm\.txt"):
        verify_bundle(bundle, trusted_keyring)


def test_a_ubjson_model_is_read_by_the_bounded_reader_and_loads_as_xgboost_loads_it(tmp_path: Path) -> None:
    X, y = data()
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
    model.save_model(tmp_path / "m.ubj")
    model.save_model(tmp_path / "m.json")
    document = read_ubjson((tmp_path / "m.ubj").read_bytes())
    assert _shape(document) == _shape(json.loads((tmp_path / "m.json").read_text()))
    rebuilt = xgboost.XGBClassifier()
    rebuilt.load_model(bytearray(ubjson_as_json((tmp_path / "m.ubj").read_bytes(), "m.ubj")))
    assert np.array_equal(rebuilt.predict_proba(X), model.predict_proba(X))


def _shape(value: Any) -> Any:
    """The document with every float rounded to float32 (JSON prints them short; UBJSON stores the float32 itself)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return float(np.float32(value)) if isinstance(value, float) else value


def _length(count: int) -> bytes:
    return b"L" + struct.pack(">q", count)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "runs past the end of the file"),
        (b"{" + _length(3) + b"key", "runs past the end of the file"),  # an object without its end
        (b"[$d#" + _length(1 << 40) + b"\x00" * 8, "a length of 4398046511104 runs past the end"),
        (b"[#" + _length(1 << 40) + b"Z", "an array of 1099511627776 runs past the end"),
        (b"[$Z#" + _length(1 << 40), "unsupported element type b'Z'"),
        (b"S" + _length(-1), "a negative length"),
        (b"[" * (MAX_DEPTH + 2), f"containers nest deeper than {MAX_DEPTH}"),
        (b"{" + _length(1) + b"a" + b"Z" + _length(1) + b"a" + b"Z}", "key 'a' appears twice"),
        (b"H" + _length(1) + b"1", "unsupported marker b'H'"),
        (b"ZZ", "1 bytes follow the document"),
    ],
)
def test_the_ubjson_reader_refuses_malformed_input_before_allocating(raw: bytes, message: str) -> None:
    with pytest.raises(Malformed, match=message):
        read_ubjson(raw)


def test_a_ubjson_file_that_is_not_a_model_is_one_error() -> None:
    with pytest.raises(BundleFormatError, match=r"m.ubj is not a well-formed XGBoost model: learner is not an object"):
        ubjson_as_json(b"{" + _length(5) + b"other" + b"Z}", "m.ubj")
    with pytest.raises(BundleFormatError, match=r"m.ubj is not XGBoost UBJSON: .*runs past the end"):
        ubjson_as_json(b"{L", "m.ubj")


@pytest.mark.parametrize("name", ["xgb-classifier", "lgbm-classifier"])
def test_a_pickled_pipeline_rebuilds_its_booster_from_the_checked_model_not_its_state(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = pipelines()[name]
    joblib.dump(model, tmp_path / "model.joblib")
    trust = {f"{type(model[-1]).__module__}.{type(model[-1]).__qualname__}", "xgboost.core.Booster", "lightgbm.basic.Booster"}
    trust |= {"collections.defaultdict"}
    for cls in (xgboost.core.Booster, lightgbm.basic.Booster):
        monkeypatch.setattr(cls, "__setstate__", _forbidden, raising=False)
    loaded = load_joblib(tmp_path / "model.joblib", trust)
    X, _ = data()
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_pickled_booster_whose_model_is_malformed_is_refused_before_the_library_reads_it(tmp_path: Path) -> None:
    booster = pipelines()["xgb-classifier"][-1].get_booster()
    serialized = bytes(booster.__getstate__()["handle"])
    joblib.dump(booster, tmp_path / "whole.joblib")
    assert load_joblib(tmp_path / "whole.joblib", {"xgboost.core.Booster"}).num_features() == 3
    stream = (tmp_path / "whole.joblib").read_bytes()
    length = struct.pack("<I", len(serialized))
    assert stream.count(length + serialized) == 1  # BINBYTES: its length, then the bytes (bytearray's argument)
    truncated = serialized[:-40]
    (tmp_path / "broken.joblib").write_bytes(stream.replace(length + serialized, struct.pack("<I", len(truncated)) + truncated))
    with pytest.raises(BundleFormatError, match=r"broken.joblib: a stored XGBoost Booster is not a well-formed model: .*past the end"):
        load_joblib(tmp_path / "broken.joblib", {"xgboost.core.Booster"})


@pytest.mark.parametrize("name", ["xgb-classifier", "lgbm-classifier"])
def test_a_skops_pipeline_is_read_at_pack_time_with_its_booster_rebuilt_not_given_state(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = pipelines()[name]
    skops.io.dump(model, tmp_path / "model.skops")
    for cls in (xgboost.core.Booster, lightgbm.basic.Booster):
        monkeypatch.setattr(cls, "__setstate__", _forbidden, raising=False)
    loaded = read_skops_with_boosters(tmp_path / "model.skops", frozenset())
    X, _ = data()
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_skops_file_whose_booster_is_malformed_is_refused_before_the_library_reads_it(tmp_path: Path) -> None:
    skops.io.dump(pipelines()["xgb-classifier"], tmp_path / "model.skops")
    with zipfile.ZipFile(tmp_path / "model.skops") as source, zipfile.ZipFile(tmp_path / "broken.skops", "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data[:-40] if data.startswith(b"{L") and b"Config" in data[:40] else data)
    with pytest.raises(BundleFormatError, match=r"broken.skops: a stored XGBoost Booster is not a well-formed model: .*past the end"):
        read_skops_with_boosters(tmp_path / "broken.skops", frozenset())
