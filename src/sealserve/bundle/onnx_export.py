"""Convert a fitted model to ONNX (skl2onnx; onnxmltools for boosters) and prove both agree on the sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from sealserve.bundle.boosters import as_served, booster_library
from sealserve.bundle.runtime import onnx_runtime
from sealserve.errors import BundleFormatError

PARITY_TOLERANCE = 1e-4


def export_onnx(estimator: Any, model_input: Any) -> bytes:
    """ONNX bytes taking the model's input as the server feeds it: one tensor of rows, or one tensor per DataFrame column."""
    if booster_library(estimator) is not None:
        from sealserve.bundle.booster_onnx import export_booster_onnx

        return export_booster_onnx(estimator, _width(model_input))
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise BundleFormatError("ONNX export needs skl2onnx: install sealserve[onnx]") from None
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        onnx_model = to_onnx(estimator, conversion_sample(model_input), options=options, target_opset=None)
    except Exception as exc:
        raise BundleFormatError(f"skl2onnx cannot convert this model: {type(exc).__name__}: {exc}") from None
    return bytes(onnx_model.SerializeToString())


def conversion_sample(model_input: Any) -> Any:
    """One row that tells the converter the input types: numbers as float32, strings as strings (one input per column)."""
    if isinstance(model_input, np.ndarray):
        return model_input[:1].astype(np.float32)
    head = model_input.head(1).copy()
    for column in head.columns:
        if head[column].dtype.kind in "fiub":
            head[column] = head[column].astype(np.float32)
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
