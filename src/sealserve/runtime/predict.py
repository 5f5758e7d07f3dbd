"""Run a loaded model on its input and answer in arrays: the predicted values (class values, numbers, a vector per row,
cluster ids or inlier/outlier marks), probabilities, and an outlier detector's scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealserve.bundle.metadata import BundleMetadata, ModelFormat, OutputSpec, Target


@dataclass(frozen=True)
class Prediction:
    """The estimator's own `predict` (a value per row, or a row of target values), class or cluster probabilities when
    the model has them, and an outlier detector's score per row."""

    values: np.ndarray
    probabilities: np.ndarray | None = None
    scores: np.ndarray | None = None


Runtime = Callable[[Any], Prediction]


def runtime_for(model: Any, metadata: BundleMetadata) -> Runtime:
    if metadata.format is ModelFormat.ONNX:
        return onnx_runtime(model)
    return estimator_runtime(model, metadata.output)


def runtime_name(metadata: BundleMetadata, compiled: bool = False) -> str:
    """What executes the model: onnxruntime for ONNX (the bundle's model or its compiled form), else the model's library."""
    if compiled or metadata.format is ModelFormat.ONNX:
        return "onnxruntime"
    return RUNTIME_NAMES.get(metadata.format, "scikit-learn")


RUNTIME_NAMES = {ModelFormat.XGBOOST: "xgboost", ModelFormat.LIGHTGBM: "lightgbm"}


def estimator_runtime(estimator: Any, output: OutputSpec) -> Runtime:
    """The label is `predict`, never the argmax of `predict_proba` (they differ for SVC's Platt scaling); an outlier
    detector adds the score method its bundle names."""
    if output.score is not None:
        score = getattr(estimator, output.score)
        return lambda model_input: Prediction(
            _flat(estimator.predict(model_input)), scores=np.asarray(score(model_input), dtype=np.float64).reshape(-1)
        )
    if output.probabilities and output.task == "multi_output":
        targets = output.targets
        return lambda model_input: Prediction(
            _flat(estimator.predict(model_input)), target_probabilities(estimator.predict_proba(model_input), targets)
        )
    if output.probabilities:
        return lambda model_input: Prediction(
            _flat(estimator.predict(model_input)), np.asarray(estimator.predict_proba(model_input), dtype=np.float64)
        )
    return lambda model_input: Prediction(_flat(estimator.predict(model_input)))


def target_probabilities(raw: Any, targets: Sequence[Target]) -> np.ndarray:
    """A multi-output classifier's `predict_proba` as one [rows, classes of every target] array, target after target:
    from one array per target (MultiOutputClassifier, forests, kNN) or from each binary target's probability of its
    second class (ClassifierChain, multilabel models). ValueError for any other layout."""
    widths = [len(target.classes) for target in targets]
    if isinstance(raw, list):
        arrays = [np.asarray(array, dtype=np.float64) for array in raw]
        if len(arrays) == len(widths) and all(a.ndim == 2 and a.shape[1] == w for a, w in zip(arrays, widths, strict=True)):
            return np.hstack(arrays)
    else:
        array = np.asarray(raw, dtype=np.float64)
        if array.ndim == 2 and array.shape[1] == len(widths) and all(width == 2 for width in widths):
            return np.stack([1.0 - array, array], axis=2).reshape(len(array), -1)
    raise ValueError(f"predict_proba does not answer the classes of each of {len(widths)} targets")


def onnx_runtime(session: Any) -> Runtime:
    """skl2onnx/onnxmltools layout: outputs[0] labels or values, outputs[1] probabilities (a tensor, or ZipMap dicts)."""
    feed = onnx_feed(session.get_inputs())
    call = session_call(session, [output.name for output in session.get_outputs()])

    def run(model_input: Any) -> Prediction:
        outputs = call(feed(model_input))
        values = _flat(outputs[0])
        if len(outputs) < 2:
            return Prediction(values)
        probabilities = outputs[1]
        if isinstance(probabilities, list):
            probabilities = [list(row.values()) for row in probabilities]
        return Prediction(values, np.asarray(probabilities, dtype=np.float64))

    return run


def session_call(session: Any, output_names: list[str]) -> Callable[[dict[str, np.ndarray]], list[Any]]:
    """`session.run(output_names, feed)` for feeds `onnx_feed` builds. onnxruntime's Python wrapper checks, on every call,
    what holds here by construction (every input fed, numpy arrays, no run options) and whether WebGPU graph capture is
    on, about 10 µs: 40 % of a 21-feature GBC's run. The capture check runs once here; an EP failure, or a session without
    the inner one, goes through the wrapper (which retries on its fallback providers)."""
    inner = getattr(session, "_sess", None)
    capture = getattr(inner, "is_webgpu_graph_capture_enabled", None)
    if not output_names or not callable(getattr(inner, "run", None)) or not callable(capture) or capture():
        return lambda feed: session.run(output_names, feed)
    from onnxruntime.capi.onnxruntime_pybind11_state import EPFail

    run = inner.run  # type: ignore[union-attr]

    def call(feed: dict[str, np.ndarray]) -> list[Any]:
        try:
            return run(output_names, feed, None)  # type: ignore[no-any-return]
        except EPFail:
            return session.run(output_names, feed)  # type: ignore[no-any-return]

    return call


def onnx_feed(inputs: Sequence[Any]) -> Callable[[Any], dict[str, np.ndarray]]:
    """The model's input (rows, or columns by name) as the session's tensors, cast to their declared types."""
    if len(inputs) == 1:
        name, dtype = inputs[0].name, ONNX_TYPES.get(inputs[0].type, np.float32)

        def single(model_input: Any) -> dict[str, np.ndarray]:
            if not isinstance(model_input, np.ndarray):
                model_input = np.column_stack([np.asarray(model_input[column], dtype=np.float64) for column in model_input])
            return {name: np.asarray(model_input, dtype=dtype)}

        return single
    typed = [(item.name, ONNX_TYPES.get(item.type, np.float32)) for item in inputs]
    return lambda columns: {name: np.asarray(columns[name], dtype=dtype).reshape(-1, 1) for name, dtype in typed}


ONNX_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def _flat(values: Any) -> np.ndarray:
    array = np.asarray(values)
    return array.reshape(len(array)) if array.ndim > 1 and array.shape[1:] == (1,) else array
