"""Loading XGBoost and LightGBM models from their own data-only formats (XGBoost JSON, LightGBM text), never pickle.

Both libraries' native loaders abort or segfault the process on some malformed files (an empty file, a truncated
LightGBM model, a child index out of range), so every file is checked structurally in Python before the library sees
it. Anything that is not what the metadata says is refused with BundleFormatError. What a loaded model is served as
lives in served.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.files import check_bytes
from sealserve.trust.boosters.served import (
    BOOSTER_CLASSES,
    LGB_CLASSIFIER,
    LGB_REGRESSOR,
    XGB_BOOSTER,
    XGB_CLASSIFIER,
    XGB_REGRESSOR,
    BoosterClassifier,
    BoosterRegressor,
    class_values,
)
from sealserve.trust.boosters.summary import Library, Summary
from sealserve.trust.boosters.xgboost_json import XGB_CLASSIFIER_OBJECTIVES


def load_booster(path: Path, library: str, model_class: str, *, n_features: int, classes: Sequence[Any] | None = None) -> Any:
    """Load with the library's own loader after a structural check, and refuse files that disagree with the metadata.

    Returns the XGBClassifier/XGBRegressor itself, or a BoosterClassifier/BoosterRegressor around the booster.
    A raw Booster is a classifier only when its objective makes booster.predict a probability (XGBoost
    binary:logistic and multi:softprob; LightGBM binary, multiclass, multiclassova); otherwise it is a regressor whose
    `predict` is booster.predict's value per row (a margin, a count, a class index for multi:softmax, …).
    """
    if BOOSTER_CLASSES.get(model_class) != library:
        raise BundleFormatError(f"model class {model_class!r} is not a supported {library} class")
    raw = _read(path)
    lib: Library = "xgboost" if library == "xgboost" else "lightgbm"
    summary = check_bytes(raw, lib, path.name)
    _check_against_metadata(summary, model_class, n_features, classes, path.name)
    model, booster = _load_xgboost(raw, model_class, path.name) if lib == "xgboost" else _load_lightgbm(raw, path.name)
    loaded_features = int(booster.num_features() if lib == "xgboost" else booster.num_feature())
    if loaded_features != n_features:
        raise BundleFormatError(f"{path.name} has {loaded_features} features after loading; the metadata says {n_features}")
    if model_class in (XGB_CLASSIFIER, XGB_REGRESSOR):
        return model
    if summary.is_classifier:
        return BoosterClassifier(booster, lib, n_features, class_values(classes, summary.n_classes))
    return BoosterRegressor(booster, lib, n_features)


def check_booster_file(path: Path, library: Library) -> None:
    """Run the structural check alone, so a packer refuses a file its own loader would refuse later."""
    raw = _read(path)
    check_bytes(raw, library, path.name)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BundleFormatError(f"cannot read {path.name}: {exc.strerror}") from None


def _check_against_metadata(summary: Summary, model_class: str, n_features: int, classes: Sequence[Any] | None, name: str) -> None:
    if summary.n_features != n_features:
        raise BundleFormatError(f"{name} has {summary.n_features} features; the metadata says {n_features}")
    wants_classifier = model_class in (XGB_CLASSIFIER, LGB_CLASSIFIER)
    if model_class in (XGB_CLASSIFIER, XGB_REGRESSOR):
        is_classifier = summary.objective in XGB_CLASSIFIER_OBJECTIVES
    else:
        is_classifier = summary.is_classifier
    kind = model_class.rsplit(".", 1)[-1]
    if model_class in (XGB_CLASSIFIER, XGB_REGRESSOR, LGB_CLASSIFIER, LGB_REGRESSOR) and is_classifier != wants_classifier:
        raise BundleFormatError(f"{name} has objective {summary.objective!r}, which is not a {kind}")
    expected_type = {XGB_CLASSIFIER: "classifier", XGB_REGRESSOR: "regressor"}.get(model_class)
    if expected_type and summary.estimator_type not in (None, expected_type):
        raise BundleFormatError(f"{name} was saved from a {summary.estimator_type}, not a {kind}")
    if classes is None:
        return
    if not is_classifier:
        raise BundleFormatError(f"the metadata lists classes but {name} is a regression model (objective {summary.objective!r})")
    if len(classes) != summary.n_classes:
        raise BundleFormatError(f"{name} predicts {summary.n_classes} classes; the metadata lists {len(classes)}")
    if model_class == XGB_CLASSIFIER and list(classes) != list(range(summary.n_classes)):
        raise BundleFormatError(f"XGBClassifier predicts classes 0..{summary.n_classes - 1}; the metadata lists {list(classes)!r}")


def _load_xgboost(raw: bytes, model_class: str, name: str) -> tuple[Any, Any]:
    """Load, then predict one all-missing row: XGBoost checks some parameters (base_score) only when predicting."""
    import xgboost

    model: Any = {XGB_CLASSIFIER: xgboost.XGBClassifier, XGB_REGRESSOR: xgboost.XGBRegressor}.get(model_class, xgboost.Booster)()
    try:
        model.load_model(bytearray(raw))
        booster = model if model_class == XGB_BOOSTER else model.get_booster()
        booster.predict(xgboost.DMatrix(np.full((1, booster.num_features()), np.nan)), validate_features=False)
    except Exception as exc:
        raise BundleFormatError(f"XGBoost refused {name}: {_first_line(exc)}") from None
    return model, booster


def _load_lightgbm(raw: bytes, name: str) -> tuple[Any, Any]:
    import lightgbm

    try:
        booster = lightgbm.Booster(model_str=raw.decode("utf-8"))
        booster.predict(np.full((1, booster.num_feature()), np.nan))
    except Exception as exc:
        raise BundleFormatError(f"LightGBM refused {name}: {_first_line(exc)}") from None
    return booster, booster


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
