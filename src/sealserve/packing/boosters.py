"""Saving a fitted XGBoost or LightGBM model into a bundle: pack time only, so the server never imports it.

The file is written in the library's data-only format and then put through the same structural check the loader runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.files import check_bytes
from sealserve.trust.boosters.load import check_booster_file, load_booster
from sealserve.trust.boosters.served import (
    BOOSTER_CLASSES,
    LGB_BOOSTER,
    XGB_BOOSTER,
    XGB_CLASSIFIER,
    XGB_REGRESSOR,
    booster_library,
    qualified_name,
)
from sealserve.trust.boosters.summary import Library

BOOSTER_SUFFIXES: dict[str, Library] = {".json": "xgboost", ".txt": "lightgbm"}


def save_booster(model: Any, path: Path) -> str:
    """Write the model in its library's data-only format and return the qualified class name for the metadata."""
    library = booster_library(model)
    name = qualified_name(model)
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


def read_booster_file(path: Path) -> Any:
    """A user's XGBoost JSON or LightGBM text model, checked structurally before the library parses it: an
    XGBClassifier/XGBRegressor when the file says it was saved from one, else the raw booster."""
    library = BOOSTER_SUFFIXES[path.suffix]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleFormatError(f"cannot read {path.name}: {exc.strerror}") from None
    summary = check_bytes(raw, library, path.name)
    if library == "lightgbm":
        model_class = LGB_BOOSTER
    else:
        model_class = {"classifier": XGB_CLASSIFIER, "regressor": XGB_REGRESSOR}.get(summary.estimator_type or "", XGB_BOOSTER)
    loaded = load_booster(path, library, model_class, n_features=summary.n_features)
    return loaded.booster if model_class in (XGB_BOOSTER, LGB_BOOSTER) else loaded
