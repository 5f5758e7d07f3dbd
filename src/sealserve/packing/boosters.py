"""Saving a fitted XGBoost or LightGBM model into a bundle: pack time only, so the server never imports it.

The file is written in the library's data-only format and then put through the same structural check the loader runs.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from sealserve.bundle import files
from sealserve.bundle.metadata import BoosterStep, ModelFormat
from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.files import check_bytes
from sealserve.trust.boosters.load import check_booster_file, load_booster
from sealserve.trust.boosters.pipeline import PIPELINE, PLACEHOLDER, STEP_CLASSES
from sealserve.trust.boosters.rebuild import SPLIT_READ_TYPES, load_skops_rebuilding_boosters
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
from sealserve.trust.boosters.xgboost_json import ubjson_as_json
from sealserve.trust.integrity.walk import check_structures
from sealserve.trust.policy.memory import check_skops_file
from sealserve.trust.policy.skops_schema import skops_io
from sealserve.trust.policy.trusted_types import refused_types

BOOSTER_SUFFIXES: dict[str, Library] = {".json": "xgboost", ".ubj": "xgboost", ".txt": "lightgbm"}


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
    """A user's XGBoost JSON or UBJSON or LightGBM text model, checked structurally before the library parses it: an
    XGBClassifier/XGBRegressor when the file says it was saved from one, else the raw booster. UBJSON reaches XGBoost
    only as the JSON sealserve's own reader made of it (ubjson_as_json)."""
    library = BOOSTER_SUFFIXES[path.suffix]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleFormatError(f"cannot read {path.name}: {exc.strerror}") from None
    if path.suffix == ".ubj":
        folder = files.private_directory("sealserve-ubj-")
        try:
            converted = folder / f"{path.stem}.json"
            converted.write_bytes(ubjson_as_json(raw, path.name))
            return read_booster_file(converted)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    summary = check_bytes(raw, library, path.name)
    if library == "lightgbm":
        model_class = LGB_BOOSTER
    else:
        model_class = {"classifier": XGB_CLASSIFIER, "regressor": XGB_REGRESSOR}.get(summary.estimator_type or "", XGB_BOOSTER)
    loaded = load_booster(path, library, model_class, n_features=summary.n_features)
    return loaded.booster if model_class in (XGB_BOOSTER, LGB_BOOSTER) else loaded


def booster_step_of(model: Any) -> tuple[str, Any] | None:
    """(name, estimator) of a scikit-learn Pipeline's last step when it is an XGBoost or LightGBM estimator, else None."""
    steps = getattr(model, "steps", None) if qualified_name(model) == PIPELINE else None
    if not isinstance(steps, list) or not steps:
        return None
    name, last = steps[-1]
    if qualified_name(last) in STEP_CLASSES and booster_library(last) is not None:
        return str(name), last
    return None


def split_booster_step(pipeline: Any, folder: Path) -> tuple[Any, BoosterStep]:
    """Write the pipeline's booster in its library's data-only format into `folder`; return the pipeline to store in
    skops (the same steps, "passthrough" in the booster's place) and the step's record for the metadata."""
    found = booster_step_of(pipeline)
    if found is None:
        raise BundleFormatError(f"{qualified_name(pipeline)} does not end in an XGBoost or LightGBM estimator")
    name, booster = found
    model_format = ModelFormat(booster_library(booster))
    estimator = save_booster(booster, folder / model_format.filename)
    rest = copy.copy(pipeline)
    rest.steps = [*pipeline.steps[:-1], (name, PLACEHOLDER)]
    n_features = int(getattr(booster, "n_features_in_", 0))
    return rest, BoosterStep(step=name, format=model_format, file=model_format.filename, estimator=estimator, n_features=n_features)


def read_skops_with_boosters(path: Path, trust: frozenset[str]) -> Any | None:
    """A .skops model that needs a booster's types (SPLIT_READ_TYPES) beyond the policy and `trust`, read with each
    Booster rebuilt from its checked model; None when the file needs no booster type, or needs other refused types."""
    check_skops_file(path)
    try:
        untrusted = skops_io().get_untrusted_types(file=path)
    except Exception:
        raise BundleFormatError(f"{path.name} is not a readable skops file") from None
    if not SPLIT_READ_TYPES.intersection(untrusted) or refused_types(untrusted, path, extra_trusted=trust | SPLIT_READ_TYPES):
        return None
    try:
        model = load_skops_rebuilding_boosters(path, list(untrusted))
    except BundleFormatError:
        raise
    except Exception as exc:
        raise BundleFormatError(f"{path.name} could not be loaded by skops: {type(exc).__name__}") from None
    check_structures(model)
    return model


def booster_hint(refusal: Exception) -> str:
    """What to trust to read a user's pipeline ending in a booster, when a refusal names a booster library's class."""
    if not any(f"{library}." in str(refusal) for library in ("xgboost", "lightgbm")):
        return ""
    return (
        ". A pickled pipeline ending in an XGBoost or LightGBM estimator is read with --trust for its classes (XGBoost: "
        "the estimator and xgboost.core.Booster; LightGBM: the estimator, lightgbm.basic.Booster and collections.defaultdict); "
        "its booster is rebuilt from its checked model, the bundle keeps it in its own format, and servers need no trusted type"
    )
