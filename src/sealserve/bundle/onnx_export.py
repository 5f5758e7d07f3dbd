"""Convert a scikit-learn estimator to ONNX (skl2onnx, optional extra) and prove both agree."""

from __future__ import annotations

from typing import Any

import numpy as np

from sealserve.errors import BundleFormatError

PARITY_TOLERANCE = 1e-4


def export_onnx(estimator: Any, rows: np.ndarray) -> bytes:
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise BundleFormatError("ONNX export needs skl2onnx: install sealserve[onnx]") from None
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        onnx_model = to_onnx(estimator, rows[:1].astype(np.float32), options=options, target_opset=None)
    except Exception as exc:
        raise BundleFormatError(f"skl2onnx cannot convert this model: {type(exc).__name__}: {exc}") from None
    return bytes(onnx_model.SerializeToString())


def check_parity(estimator: Any, onnx_bytes: bytes, rows: np.ndarray) -> None:
    """Refuse to pack an ONNX file whose outputs differ from the estimator on the sample."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: rows.astype(np.float32)})
    if hasattr(estimator, "predict_proba"):
        expected = estimator.predict_proba(rows)
        worst = float(np.max(np.abs(np.asarray(outputs[1], dtype=np.float64) - expected)))
    else:
        expected = estimator.predict(rows)
        worst = float(np.max(np.abs(np.asarray(outputs[0], dtype=np.float64).reshape(expected.shape) - expected)))
    if worst > PARITY_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
        raise BundleFormatError(f"ONNX output differs from the estimator by {worst:.3g} on the sample")
