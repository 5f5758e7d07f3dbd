"""Convert XGBoost and LightGBM models to ONNX with onnxmltools, in the output layout skl2onnx classifiers use.

Classifiers: outputs[0] = labels (n,), outputs[1] = probabilities (n, n_classes) float32. Regressors: outputs[0] =
values (n, 1) float32. Models with categorical features are refused: the ONNX input is a float tensor and nothing
would say how categories map to numbers.
"""

from __future__ import annotations

from typing import Any

from sealserve.errors import BundleFormatError
from sealserve.trust.boosters.served import LGB_BOOSTER, XGB_BOOSTER, booster_library, needs_frame, served_as_classifier

INPUT_NAME = "input"


def export_booster_onnx(model: Any, n_features: int) -> bytes:
    """ONNX bytes for a fitted XGBoost/LightGBM sklearn wrapper or raw Booster taking a float tensor (n, n_features)."""
    library = booster_library(model)
    if library is None:
        raise BundleFormatError(f"{type(model).__qualname__} is not an XGBoost or LightGBM model")
    try:
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        raise BundleFormatError("ONNX export of boosters needs onnxmltools: install sealserve[onnx]") from None
    name = f"{type(model).__module__}.{type(model).__qualname__}"
    _check_model(model, name, library, n_features)
    initial_types = [(INPUT_NAME, FloatTensorType([None, n_features]))]
    try:
        if library == "xgboost":
            onnx_model = convert_xgboost(_xgboost_for_conversion(model, name), initial_types=initial_types)
        else:
            onnx_model = convert_lightgbm(_lightgbm_for_conversion(model, name), initial_types=initial_types, zipmap=False)
    except Exception as exc:
        raise BundleFormatError(f"onnxmltools cannot convert {name}: {type(exc).__name__}: {exc}") from None
    _check_outputs(onnx_model, served_as_classifier(model), name)
    return bytes(onnx_model.SerializeToString())


def _check_model(model: Any, name: str, library: str, n_features: int) -> None:
    if library == "xgboost":
        booster = model if name == XGB_BOOSTER else model.get_booster()
        model_features = int(booster.num_features())
    else:
        booster = model if name == LGB_BOOSTER else model.booster_
        model_features = int(booster.num_feature())
    if model_features != n_features:
        raise BundleFormatError(f"{name} has {model_features} features, not {n_features}")
    if needs_frame(model):
        raise BundleFormatError(f"{name} has categorical features, which sealserve does not export to ONNX")


def _xgboost_for_conversion(model: Any, name: str) -> Any:
    """A copy of the booster without feature names (onnxmltools wants f0, f1, …), cut at best_iteration like predict()."""
    if name == XGB_BOOSTER:
        booster = model.copy()
    else:
        booster = model.get_booster()
        best = getattr(model, "best_iteration", None)
        booster = booster[: best + 1] if best is not None else booster.copy()
    booster.feature_names = None
    booster.feature_types = None
    return booster


def _lightgbm_for_conversion(model: Any, name: str) -> Any:
    """A raw Booster reloaded from its text: onnxmltools reads params["objective"], which keeps aliases (softmax) until then."""
    if name != LGB_BOOSTER:
        return model
    import lightgbm

    return lightgbm.Booster(model_str=model.model_to_string())


def _check_outputs(onnx_model: Any, classifier: bool, name: str) -> None:
    outputs = onnx_model.graph.output
    expected = 2 if classifier else 1
    if len(outputs) != expected:
        kind = "classifier" if classifier else "regressor"
        raise BundleFormatError(f"onnxmltools produced {len(outputs)} outputs for the {kind} {name}; sealserve expects {expected}")
    if classifier:
        _batch_dimension(outputs[0])


def _batch_dimension(output: Any) -> None:
    """onnxmltools declares LightGBM's label output as shape [1]; make it [None] so runtimes stop warning on batches."""
    dims = output.type.tensor_type.shape.dim
    if len(dims) == 1 and dims[0].HasField("dim_value"):
        dims[0].ClearField("dim_value")
