"""Structural checks of XGBoost JSON and LightGBM text models, in Python, before either library's loader reads them.

Both native loaders abort or segfault the process on some malformed files (an empty file, a truncated LightGBM
model, a child index out of range), so nothing reaches them that these checks have not walked.
"""

from __future__ import annotations

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.lightgbm_text import check_lightgbm_text
from sealserve.trust.boosters.summary import Library, Summary
from sealserve.trust.boosters.xgboost_json import check_xgboost_json


def check_bytes(raw: bytes, library: Library, name: str) -> Summary:
    if library == "xgboost":
        if raw.startswith(b"tree\n"):
            raise BundleFormatError(f"{name} is a LightGBM text model, not XGBoost JSON")
        return check_xgboost_json(raw, name)
    if raw.lstrip().startswith(b"{"):
        raise BundleFormatError(f"{name} looks like XGBoost JSON, not a LightGBM text model")
    return check_lightgbm_text(raw, name)
