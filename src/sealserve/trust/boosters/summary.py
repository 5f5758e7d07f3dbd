"""What a checked XGBoost or LightGBM model file says about itself, and the failure the structural checks raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Library = Literal["xgboost", "lightgbm"]

INT32_MAX = (1 << 31) - 1
MAX_CLASSES = 1 << 16  # far beyond any real classifier; a corrupt count would size per-row output buffers


@dataclass(frozen=True)
class Summary:
    objective: str
    n_features: int
    n_classes: int
    is_classifier: bool
    estimator_type: str | None = None


class Malformed(Exception):
    """Raised inside the checks; the caller names the file."""


def need(condition: bool, message: str) -> None:
    if not condition:
        raise Malformed(message)
