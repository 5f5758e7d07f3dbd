"""XGBoost and LightGBM models in their own data-only formats (XGBoost JSON, LightGBM text), never pickle.

Both libraries' native loaders abort or segfault the process on some malformed files (an empty file, a truncated
LightGBM model, a child index out of range), so every file is checked structurally in Python before the library sees
it. Anything that is not what the metadata says is refused with BundleFormatError.

Input shape for a loaded model: pass what the model was fitted on. A model fitted on a DataFrame gets a DataFrame with
the training columns in order and dtypes; a model fitted on an array gets a 2-D float64 array. `needs_frame` says when
an array cannot work (categorical features); numeric models fitted on a DataFrame also accept an array.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.files import check_bytes
from sealserve.trust.boosters.lightgbm_text import lightgbm_summary
from sealserve.trust.boosters.summary import Library, Malformed, Summary
from sealserve.trust.boosters.xgboost_json import XGB_CLASSIFIER_OBJECTIVES, xgboost_summary

XGB_CLASSIFIER = "xgboost.sklearn.XGBClassifier"
XGB_REGRESSOR = "xgboost.sklearn.XGBRegressor"
XGB_BOOSTER = "xgboost.core.Booster"
LGB_CLASSIFIER = "lightgbm.sklearn.LGBMClassifier"
LGB_REGRESSOR = "lightgbm.sklearn.LGBMRegressor"
LGB_BOOSTER = "lightgbm.basic.Booster"

BOOSTER_CLASSES: Mapping[str, Library] = MappingProxyType(
    {
        XGB_CLASSIFIER: "xgboost",
        XGB_REGRESSOR: "xgboost",
        XGB_BOOSTER: "xgboost",
        LGB_CLASSIFIER: "lightgbm",
        LGB_REGRESSOR: "lightgbm",
        LGB_BOOSTER: "lightgbm",
    }
)


Rows = Any  # a 2-D float64 numpy array or a pandas DataFrame with the training columns


# ---------------------------------------------------------------------------------------------------------- serving


@dataclass(frozen=True, eq=False)
class BoosterRegressor:
    """A raw booster (or a LightGBM regressor) served with scikit-learn's `predict`: one raw output per row."""

    booster: Any
    library: Library
    n_features_in_: int

    def predict(self, X: Rows) -> npt.NDArray[Any]:
        return _raw_predict(self.booster, self.library, X)


@dataclass(frozen=True, eq=False)
class BoosterClassifier:
    """A booster whose output is class probabilities, served with `predict_proba`, `predict` and `classes_`."""

    booster: Any
    library: Library
    n_features_in_: int
    classes_: npt.NDArray[Any]

    def predict_proba(self, X: Rows) -> npt.NDArray[Any]:
        raw = _raw_predict(self.booster, self.library, X)
        return np.vstack((1.0 - raw, raw)).transpose() if raw.ndim == 1 else raw

    def predict(self, X: Rows) -> npt.NDArray[Any]:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


LightGBMRegressorModel = BoosterRegressor
LightGBMClassifierModel = BoosterClassifier


def _raw_predict(booster: Any, library: Library, X: Rows) -> npt.NDArray[Any]:
    if library == "xgboost":
        import xgboost

        if isinstance(X, np.ndarray):
            return np.asarray(booster.predict(xgboost.DMatrix(X), validate_features=False))
        return np.asarray(booster.predict(xgboost.DMatrix(X, enable_categorical=True)))
    return np.asarray(booster.predict(X))


def needs_frame(model: Any) -> bool:
    """True when the model has categorical features, so only a DataFrame with pandas `category` columns can feed it."""
    booster = _booster_of(model)
    if booster is None:
        return False
    if _library_of_booster(booster) == "xgboost":
        return "c" in (booster.feature_types or [])
    return bool(booster.pandas_categorical)


def as_served(model: Any, classes: Sequence[Any] | None = None) -> Any:
    """A fitted raw Booster wrapped as load_booster will serve it, so a packer compares like with like; others unchanged."""
    name = _qualified_name(model)
    if name not in (XGB_BOOSTER, LGB_BOOSTER):
        return model
    library = _library_of_booster(model)
    summary = _summary_of_booster(model)
    if summary.is_classifier:
        return BoosterClassifier(model, library, summary.n_features, _class_values(classes, summary.n_classes))
    return BoosterRegressor(model, library, summary.n_features)


def served_as_classifier(model: Any) -> bool:
    """Whether sealserve serves this fitted model with class probabilities (the rule load_booster applies)."""
    name = _qualified_name(model)
    if name in (XGB_CLASSIFIER, LGB_CLASSIFIER):
        return True
    return name in (XGB_BOOSTER, LGB_BOOSTER) and _summary_of_booster(model).is_classifier


def _summary_of_booster(booster: Any) -> Summary:
    try:
        if _library_of_booster(booster) == "xgboost":
            return xgboost_summary(json.loads(bytes(booster.save_raw("json"))))
        return lightgbm_summary(booster.model_to_string().encode("utf-8"))
    except Malformed as exc:
        raise BundleFormatError(f"sealserve cannot read this booster: {exc}") from None


def _booster_of(model: Any) -> Any:
    if isinstance(model, BoosterRegressor | BoosterClassifier):
        return model.booster
    name = _qualified_name(model)
    if name in (XGB_CLASSIFIER, XGB_REGRESSOR):
        return model.get_booster()
    if name in (LGB_CLASSIFIER, LGB_REGRESSOR):
        return model.booster_
    if name in (XGB_BOOSTER, LGB_BOOSTER):
        return model
    return None


def _library_of_booster(booster: Any) -> Library:
    return "xgboost" if _qualified_name(booster) == XGB_BOOSTER else "lightgbm"


# ------------------------------------------------------------------------------------------------------------- save


def _qualified_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def booster_library(model: Any) -> Library | None:
    """The library of a supported booster object; the exact class must be the one the library defines (no import)."""
    name = _qualified_name(model)
    library = BOOSTER_CLASSES.get(name)
    if library is None:
        return None
    module = sys.modules.get(type(model).__module__)
    if module is None or getattr(module, type(model).__qualname__, None) is not type(model):
        return None
    return library


def save_booster(model: Any, path: Path) -> str:
    """Write the model in its library's data-only format and return the qualified class name for the metadata."""
    library = booster_library(model)
    name = _qualified_name(model)
    if library is None:
        raise BundleFormatError(f"{name} is not a supported booster; supported: {', '.join(BOOSTER_CLASSES)}")
    _require_fitted(model, name)
    try:
        if library == "xgboost":
            if path.suffix != ".json":
                raise BundleFormatError(f"XGBoost models are saved as JSON: {path.name} must end in .json")
            model.save_model(path)
        else:
            booster = model if name == LGB_BOOSTER else model.booster_
            booster.save_model(path)
    except BundleFormatError:
        raise
    except Exception as exc:
        raise BundleFormatError(f"cannot save {name}: {type(exc).__name__}: {exc}") from None
    check_booster_file(path, library)
    return name


def _require_fitted(model: Any, name: str) -> None:
    if name == XGB_BOOSTER:
        fitted = model.num_boosted_rounds() > 0
    elif name == LGB_BOOSTER:
        fitted = model.num_trees() > 0
    else:
        fitted = bool(model.__sklearn_is_fitted__())
    if not fitted:
        raise BundleFormatError(f"{name} is not fitted: fit it before packing")


# ------------------------------------------------------------------------------------------------------------- load


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
        return BoosterClassifier(booster, lib, n_features, _class_values(classes, summary.n_classes))
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


def _class_values(classes: Sequence[Any] | None, n_classes: int) -> npt.NDArray[Any]:
    return np.arange(n_classes) if classes is None else np.asarray(list(classes))


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
