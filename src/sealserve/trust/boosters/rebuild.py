"""Boosters met inside a pickle (a pipeline saved with joblib), rebuilt from the model their state carries after the
structural checks, instead of running their __setstate__, which hands the stream's bytes to the native loader unchecked."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.lightgbm_text import check_lightgbm_text
from sealserve.trust.boosters.served import LGB_BOOSTER, XGB_BOOSTER, booster_library, qualified_name
from sealserve.trust.boosters.summary import Malformed
from sealserve.trust.boosters.ubjson import read_ubjson
from sealserve.trust.boosters.xgboost_json import xgboost_summary


def rebuilds_state(instance: Any) -> bool:
    """Whether `instance` is a library's own Booster, whose state is rebuilt here rather than set."""
    return booster_library(instance) is not None and qualified_name(instance) in (XGB_BOOSTER, LGB_BOOSTER)


def rebuild_booster(instance: Any, state: Any, name: str) -> None:
    """Initialise `instance` (made by the stream with __new__ only) from its pickled state's model, checked first."""
    if qualified_name(instance) == XGB_BOOSTER:
        handle = state.get("handle") if isinstance(state, dict) else None
        if not isinstance(handle, bytes | bytearray):
            raise BundleFormatError(f"{name}: a pickled XGBoost Booster carries no serialized model")
        try:
            document = read_ubjson(bytes(handle))
            model = document.get("Model") if isinstance(document, dict) else None
            xgboost_summary(model)
        except Malformed as exc:
            raise BundleFormatError(f"{name}: a pickled XGBoost Booster is not a well-formed model: {exc}") from None
        _initialise(instance, name, model_file=bytearray(json.dumps(model).encode("utf-8")))
        return
    text = state.get("_handle") if isinstance(state, dict) else None
    if not isinstance(text, str):
        raise BundleFormatError(f"{name}: a pickled LightGBM Booster carries no model text")
    check_lightgbm_text(text.encode("utf-8"), f"{name} (a pickled LightGBM Booster)")
    _initialise(instance, name, model_str=text)


def _initialise(instance: Any, name: str, **source: Any) -> None:
    """The library's own constructor on checked bytes, then one all-missing row (XGBoost checks some parameters only then)."""
    try:
        type(instance).__init__(instance, **source)
        if qualified_name(instance) == XGB_BOOSTER:
            import xgboost

            instance.predict(xgboost.DMatrix(np.full((1, instance.num_features()), np.nan)), validate_features=False)
        else:
            instance.predict(np.full((1, instance.num_feature()), np.nan))
    except Exception as exc:
        raise BundleFormatError(f"{name}: the booster's library refused its model: {type(exc).__name__}") from None
