"""Saving a fitted XGBoost or LightGBM model into a bundle: pack time only, so the server never imports it.

The file is written in the library's data-only format and then put through the same structural check the loader runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.load import check_booster_file
from sealserve.trust.boosters.served import BOOSTER_CLASSES, LGB_BOOSTER, XGB_BOOSTER, booster_library, qualified_name


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
