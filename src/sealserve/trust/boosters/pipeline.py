"""A scikit-learn pipeline packed split: its steps from skops, its XGBoost or LightGBM last step from that library's
data-only file. The booster is built by its own loader (load_booster), never unpickled or given state by skops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sealserve.bundle.metadata import BundleMetadata, ModelFormat
from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.load import check_booster_file, load_booster
from sealserve.trust.boosters.served import LGB_CLASSIFIER, LGB_REGRESSOR, XGB_CLASSIFIER, XGB_REGRESSOR, qualified_name

STEP_CLASSES = frozenset({XGB_CLASSIFIER, XGB_REGRESSOR, LGB_CLASSIFIER, LGB_REGRESSOR})
"""The booster estimators a pipeline may end in (a raw Booster has no scikit-learn interface to sit in one)."""
PIPELINE = "sklearn.pipeline.Pipeline"
PLACEHOLDER = "passthrough"


def attach_booster_step(pipeline: Any, folder: Path, metadata: BundleMetadata) -> Any:
    """Put the bundle's booster back as the last step of the pipeline loaded from its skops file."""
    step = metadata.booster_step
    if step is None:
        return pipeline
    if step.estimator not in STEP_CLASSES:
        raise BundleFormatError(f"a pipeline's booster step is one of {', '.join(sorted(STEP_CLASSES))}, not {step.estimator}")
    steps = getattr(pipeline, "steps", None) if qualified_name(pipeline) == PIPELINE else None
    if not isinstance(steps, list) or not steps or tuple(steps[-1]) != (step.step, PLACEHOLDER):
        raise BundleFormatError(f"{metadata.model_file} is not a pipeline whose last step {step.step!r} is left for {step.file}")
    classes = [item.value for item in metadata.output.classes] if metadata.output.task == "classification" else None
    booster = load_booster(folder / step.file, step.format.value, step.estimator, n_features=step.n_features, classes=classes)
    pipeline.steps = [*steps[:-1], (step.step, booster)]
    return pipeline


def audit_booster_step(folder: Path, metadata: BundleMetadata) -> None:
    """The structural check of the booster step's file, for an audit that constructs nothing."""
    step = metadata.booster_step
    if step is not None:
        check_booster_file(folder / step.file, "xgboost" if step.format is ModelFormat.XGBOOST else "lightgbm")
