"""What a loaded XGBoost or LightGBM model is served as, and which booster classes sealserve knows.

The loader returns these wrappers and a packer compares its model with them (`as_served`), so both sides share one
definition. This module imports neither library at import time.

Input shape for a loaded model: pass what the model was fitted on. A model fitted on a DataFrame gets a DataFrame with
the training columns in order and dtypes; a model fitted on an array gets a 2-D float64 array. `needs_frame` says when
an array cannot work (categorical features); numeric models fitted on a DataFrame also accept an array.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.lightgbm_text import lightgbm_summary
from sealserve.trust.boosters.summary import Library, Malformed, Summary
from sealserve.trust.boosters.xgboost_json import xgboost_summary

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


class _Loaded:
    """A fitted estimator in scikit-learn's sense (fitted, with tags), so a pipeline ending in one predicts."""

    estimator_type = "regressor"

    def fit(self, *_: Any, **__: Any) -> None:
        raise TypeError("a booster loaded from a bundle serves as it is; fit the original estimator instead")

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        classifier = self.estimator_type == "classifier"
        return Tags(
            estimator_type=self.estimator_type,
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags() if classifier else None,
            regressor_tags=None if classifier else RegressorTags(),
        )


@dataclass(frozen=True, eq=False)
class BoosterRegressor(_Loaded):
    """A raw booster (or a LightGBM regressor) served with scikit-learn's `predict`: one raw output per row."""

    booster: Any
    library: Library
    n_features_in_: int

    def predict(self, X: Rows) -> npt.NDArray[Any]:
        return _raw_predict(self.booster, self.library, X)


@dataclass(frozen=True, eq=False)
class BoosterClassifier(_Loaded):
    """A booster whose output is class probabilities, served with `predict_proba`, `predict` and `classes_`."""

    booster: Any
    library: Library
    n_features_in_: int
    classes_: npt.NDArray[Any]
    estimator_type = "classifier"

    def predict_proba(self, X: Rows) -> npt.NDArray[Any]:
        raw = _raw_predict(self.booster, self.library, X)
        return np.vstack((1.0 - raw, raw)).transpose() if raw.ndim == 1 else raw

    def predict(self, X: Rows) -> npt.NDArray[Any]:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


def _raw_predict(booster: Any, library: Library, X: Rows) -> npt.NDArray[Any]:
    if library == "xgboost":
        import xgboost

        if isinstance(X, np.ndarray):
            return np.asarray(booster.predict(xgboost.DMatrix(X), validate_features=False))
        return np.asarray(booster.predict(xgboost.DMatrix(X, enable_categorical=True)))
    return np.asarray(booster.predict(X))


def class_values(classes: Sequence[Any] | None, n_classes: int) -> npt.NDArray[Any]:
    """The `classes_` of a served classifier: the metadata's classes, or 0..n-1 when it lists none."""
    return np.arange(n_classes) if classes is None else np.asarray(list(classes))


def needs_frame(model: Any) -> bool:
    """True when the model has categorical features, so only a DataFrame with pandas `category` columns can feed it."""
    booster = booster_of(model)
    if booster is None:
        return False
    if library_of_booster(booster) == "xgboost":
        return "c" in (booster.feature_types or [])
    return bool(booster.pandas_categorical)


def as_served(model: Any, classes: Sequence[Any] | None = None) -> Any:
    """A fitted raw Booster wrapped as load_booster will serve it, so a packer compares like with like; others unchanged."""
    name = qualified_name(model)
    if name not in (XGB_BOOSTER, LGB_BOOSTER):
        return model
    library = library_of_booster(model)
    summary = _summary_of_booster(model)
    if summary.is_classifier:
        return BoosterClassifier(model, library, summary.n_features, class_values(classes, summary.n_classes))
    return BoosterRegressor(model, library, summary.n_features)


def served_as_classifier(model: Any) -> bool:
    """Whether sealserve serves this fitted model with class probabilities (the rule load_booster applies)."""
    name = qualified_name(model)
    if name in (XGB_CLASSIFIER, LGB_CLASSIFIER):
        return True
    return name in (XGB_BOOSTER, LGB_BOOSTER) and _summary_of_booster(model).is_classifier


def _summary_of_booster(booster: Any) -> Summary:
    try:
        if library_of_booster(booster) == "xgboost":
            return xgboost_summary(json.loads(bytes(booster.save_raw("json"))))
        return lightgbm_summary(booster.model_to_string().encode("utf-8"))
    except Malformed as exc:
        raise BundleFormatError(f"sealserve cannot read this booster: {exc}") from None


def booster_of(model: Any) -> Any:
    if isinstance(model, BoosterRegressor | BoosterClassifier):
        return model.booster
    name = qualified_name(model)
    if name in (XGB_CLASSIFIER, XGB_REGRESSOR):
        return model.get_booster()
    if name in (LGB_CLASSIFIER, LGB_REGRESSOR):
        return model.booster_
    if name in (XGB_BOOSTER, LGB_BOOSTER):
        return model
    return None


def library_of_booster(booster: Any) -> Library:
    return "xgboost" if qualified_name(booster) == XGB_BOOSTER else "lightgbm"


def qualified_name(obj: Any) -> str:
    """`module.QualName` of the object's class, the name the metadata records."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def booster_library(model: Any) -> Library | None:
    """The library of a supported booster object; the exact class must be the one the library defines (no import)."""
    name = qualified_name(model)
    library = BOOSTER_CLASSES.get(name)
    if library is None:
        return None
    module = sys.modules.get(type(model).__module__)
    if module is None or getattr(module, type(model).__qualname__, None) is not type(model):
        return None
    return library
