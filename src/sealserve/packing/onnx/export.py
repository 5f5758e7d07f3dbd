"""Convert a fitted model to ONNX (skl2onnx; onnxmltools for boosters) and prove both agree on the sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from sealserve.errors import BundleFormatError
from sealserve.packing.onnx.trees import (
    CONVERSION_LOCK,
    ML_DOMAIN,
    TREE_OPS,
    InexactTreesError,
    double_input,
    double_trees,
    finish,
    has_trees,
)
from sealserve.runtime.predict import onnx_runtime
from sealserve.trust.boosters.served import as_served, booster_library

PARITY_TOLERANCE = 1e-4
FLOAT32_TREES = "a tree model that converts only with float32 inputs stays on the reference runtime (its thresholds would round)"
CATEGORICAL_HGB = "HistGradientBoosting with categorical splits: skl2onnx writes them as numeric thresholds, which answer differently"
TREE_MISSING_VALUES = "scikit-learn trees route missing values the way each split learned; skl2onnx does not convert that routing"


def export_onnx(estimator: Any, model_input: Any) -> bytes:
    """ONNX bytes taking the model's input as the server feeds it: one tensor of rows, or one tensor per DataFrame column."""
    if booster_library(estimator) is not None:
        from sealserve.packing.onnx.boosters import export_booster_onnx

        with CONVERSION_LOCK:
            return export_booster_onnx(estimator, _width(model_input))
    return bytes(_skl2onnx(estimator, conversion_sample(model_input)).SerializeToString())


def export_compiled(estimator: Any, model_input: Any, *, double: bool = True) -> bytes:
    """The compiled form a bundle carries beside its model: every tree splits exactly where the estimator splits.

    XGBoost compares float32 features with float32 thresholds itself, so its float32 ONNX is exact (`double` does not
    apply). LightGBM and scikit-learn trees get double thresholds and a double input (see onnx_trees). Other
    scikit-learn models convert with a double input, or with float32 (`double=False`) when a converter or runtime
    lacks double support; with float32, a graph with trees is returned only when they split exactly as the estimator
    does (`_float32_trees_exact`).
    """
    library = booster_library(estimator)
    if library is not None:
        from sealserve.packing.onnx.boosters import export_booster_onnx

        if library == "xgboost":
            with CONVERSION_LOCK:
                return export_booster_onnx(estimator, _width(model_input))
        import onnx

        with double_trees(double_scores=False):
            onnx_bytes = export_booster_onnx(estimator, _width(model_input))
        return bytes(double_input(onnx.load_model_from_string(onnx_bytes)).SerializeToString())
    if double:
        with double_trees(double_scores=True):
            onnx_model = _skl2onnx(estimator, conversion_sample(model_input, np.float64))
        return bytes(finish(onnx_model).SerializeToString())
    onnx_model = _skl2onnx(estimator, conversion_sample(model_input))
    if has_trees(onnx_model) and not _float32_trees_exact(estimator, onnx_model):
        raise InexactTreesError(FLOAT32_TREES)
    return bytes(onnx_model.SerializeToString())


def _float32_trees_exact(estimator: Any, onnx_model: Any) -> bool:
    """Float32 trees split exactly like scikit-learn's own trees when they read the model input itself.

    Decision trees, forests, extra trees and gradient boosting (alone or inside bagging, AdaBoost, stacking, voting)
    cast X to float32 before comparing it with their double thresholds, and skl2onnx adjusts each threshold for
    that cast; the server casts the input to float32 the same way. HistGradientBoosting compares float64 X, and
    anything computed before the trees (scaling, imputation) differs in float32, so those need double trees.
    """
    if any(hasattr(part, "_predictors") for part in model_parts(estimator)):
        return False
    inputs = {item.name for item in onnx_model.graph.input}
    return all(node.input[0] in inputs for node in onnx_model.graph.node if node.domain == ML_DOMAIN and node.op_type in TREE_OPS)


def _skl2onnx(estimator: Any, sample: Any) -> Any:
    """Convert with one input per DataFrame column, or, for an all-numeric frame the model takes whole, one tensor."""
    parts = model_parts(estimator)
    if any(_categorical_hgb(part) for part in parts):
        raise BundleFormatError(f"skl2onnx cannot convert this model exactly: {CATEGORICAL_HGB}")
    if any(_unbounded_splits(part) for part in parts):  # fitted on missing values; skl2onnx's double thresholds never return on inf
        raise BundleFormatError(f"skl2onnx cannot convert this model exactly: {TREE_MISSING_VALUES} (splits at infinity)")
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise BundleFormatError("ONNX export needs skl2onnx: install sealserve[onnx]") from None
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    numeric_frame = not isinstance(sample, np.ndarray) and all(dtype.kind == "f" for dtype in sample.dtypes)
    try:
        with CONVERSION_LOCK:
            try:
                return to_onnx(estimator, sample, options=options, target_opset=None)
            except InexactTreesError:
                raise
            except Exception:
                if not numeric_frame:
                    raise
                return to_onnx(estimator, sample.to_numpy(), options=options, target_opset=None)
    except InexactTreesError:
        raise
    except Exception as exc:
        raise BundleFormatError(f"skl2onnx cannot convert this model: {type(exc).__name__}: {exc}") from None


def _categorical_hgb(part: Any) -> bool:
    categorical = getattr(part, "is_categorical_", None)
    return type(part).__name__.startswith("HistGradientBoosting") and categorical is not None and bool(np.any(categorical))


def has_sklearn_trees(estimator: Any) -> bool:
    """Decision trees, forests, extra trees, gradient boosting (not HistGradientBoosting) anywhere in the model."""
    return any(hasattr(getattr(part, "tree_", None), "threshold") for part in model_parts(estimator))


def _unbounded_splits(part: Any) -> bool:
    tree: Any = getattr(part, "tree_", None)
    if not hasattr(tree, "threshold"):
        return False
    splits = np.asarray(tree.threshold)[np.asarray(tree.feature) >= 0]
    return bool(np.any(~np.isfinite(splits) | (np.abs(splits) >= np.finfo(np.float32).max)))


def model_parts(estimator: Any, depth: int = 0) -> list[Any]:
    """The estimator and every fitted estimator inside it (pipeline steps, column transformers, ensembles, wrappers)."""
    from sklearn.base import BaseEstimator

    found = [estimator]
    if depth > 8:
        return found
    stack: list[Any] = list(vars(estimator).values()) if isinstance(estimator, BaseEstimator) else []
    while stack:
        value = stack.pop()
        if isinstance(value, BaseEstimator):
            found.extend(model_parts(value, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, np.ndarray) and value.dtype == object:
            stack.extend(value.ravel().tolist())
    return found


def conversion_sample(model_input: Any, dtype: Any = np.float32) -> Any:
    """One row that tells the converter the input types: numbers as `dtype`, strings as strings (one input per column)."""
    if isinstance(model_input, np.ndarray):
        return model_input[:1].astype(dtype)
    head = model_input.head(1).copy()
    for column in head.columns:
        if head[column].dtype.kind in "fiub":
            head[column] = head[column].astype(dtype)
    return head


def check_parity(estimator: Any, onnx_bytes: bytes, model_input: Any) -> None:
    """Refuse an ONNX file whose outputs differ from the estimator on the sample, fed exactly as the server feeds it."""
    import onnxruntime

    reference = as_served(estimator)
    try:
        session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        served = onnx_runtime(session)(model_input)
    except Exception as exc:
        raise BundleFormatError(f"the ONNX model cannot predict the sample: {type(exc).__name__}") from None
    if hasattr(reference, "predict_proba") and served.probabilities is not None:
        expected = np.asarray(reference.predict_proba(model_input), dtype=np.float64)
        worst = float(np.max(np.abs(served.probabilities - expected)))
    else:
        expected = np.asarray(reference.predict(model_input), dtype=np.float64)
        worst = float(np.max(np.abs(np.asarray(served.values, dtype=np.float64).reshape(expected.shape) - expected)))
    if worst > PARITY_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
        raise BundleFormatError(f"ONNX output differs from the estimator by {worst:.3g} on the sample")


def _width(model_input: Any) -> int:
    return int(model_input.shape[1])
