"""What a packed model answers, read from the fitted estimator: its task, classes, targets, and probability or score
methods. Recorded in the signed metadata; the server answers each task in its own shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sealserve.bundle.metadata import ModelClass, OutputSpec, Target
from sealserve.errors import BundleFormatError
from sealserve.runtime.predict import target_probabilities

RESERVED_TARGET_NAMES = frozenset({"predict"})
"""V2 output names a target cannot take (each target is also a V2 output of its own name)."""


def output_spec(
    estimator: Any, onnx_bytes: bytes | None, class_labels: Mapping[Any, str] | None, targets: Sequence[str], model_input: Any
) -> OutputSpec:
    """The task detected from the estimator: outlier detector, clusterer (or mixture), multi-output (a vector per row on the
    sample), classifier (it has `classes_`), else regressor. `targets` names a multi-output model's columns."""
    labels = {plain(key): value for key, value in (class_labels or {}).items()}
    if estimator is None:
        return _onnx_file(onnx_bytes or b"", labels)
    predicted = check_predicts(estimator, model_input)
    kind = estimator_type(estimator)
    if kind == "outlier_detector":
        return OutputSpec(task="outlier_detection", score=_score_method(estimator))
    if kind in ("clusterer", "density_estimator"):  # a density estimator that predicts is a mixture: its component
        return _clustering(estimator, model_input)
    if predicted.ndim == 2 and predicted.shape[1] > 1:
        spec = _multi_output(estimator, predicted.shape[1], list(targets), classifier=kind == "classifier")
        return spec.model_copy(update={"probabilities": _answers_target_probabilities(estimator, spec, model_input)})
    if len(targets) > 1:
        raise BundleFormatError(f"{len(targets)} targets are named ({', '.join(targets)}), but the model predicts one value per row")
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return OutputSpec(task="regression")
    values = [plain(value) for value in classes]
    return OutputSpec(
        task="classification",
        classes=[ModelClass(value=value, label=labels.get(value, str(value))) for value in values],
        probabilities=has_method(estimator, "predict_proba"),
    )


def check_predicts(estimator: Any, model_input: Any) -> np.ndarray:
    """The estimator's answer on the first sample rows; a model without `predict` is refused, saying so."""
    if not has_method(estimator, "predict"):
        raise BundleFormatError(
            f"{type(estimator).__name__} has no predict method: sealserve serves models that predict new rows "
            "(a clusterer such as DBSCAN only labels its training data; a transformer has no prediction)"
        )
    try:
        return np.asarray(estimator.predict(model_input[:5]))
    except Exception as exc:
        raise BundleFormatError(f"the model cannot predict the sample: {type(exc).__name__}: {exc}") from None


def estimator_type(estimator: Any) -> str | None:
    """scikit-learn's own tag (a pipeline's is its last step's); None for models outside scikit-learn's conventions."""
    if not hasattr(estimator, "__sklearn_tags__"):
        return None
    from sklearn.utils import get_tags

    kind = get_tags(estimator).estimator_type
    return None if kind is None else str(kind)


def has_method(estimator: Any, name: str) -> bool:
    """Whether the method is available: sklearn hides some behind a property raising AttributeError (SVC's predict_proba)."""
    try:
        return callable(getattr(estimator, name))
    except AttributeError:
        return False


def _score_method(estimator: Any) -> Any:
    for name in ("score_samples", "decision_function"):
        if has_method(estimator, name):
            return name
    raise BundleFormatError(
        f"{type(estimator).__name__} has neither score_samples nor decision_function: its outlier score cannot be served"
    )


def _clustering(estimator: Any, model_input: Any) -> OutputSpec:
    """Cluster ids answer as integers; with `predict_proba` (mixtures) the probability columns are the ids 0..k-1."""
    if not has_method(estimator, "predict_proba"):
        return OutputSpec(task="clustering")
    width = int(np.asarray(estimator.predict_proba(model_input[:1])).shape[1])
    return OutputSpec(task="clustering", classes=[ModelClass(value=index, label=str(index)) for index in range(width)], probabilities=True)


def _answers_target_probabilities(estimator: Any, spec: OutputSpec, model_input: Any) -> bool:
    """Whether every target is a class and `predict_proba` gives each target's class probabilities on the sample."""
    if not spec.targets or any(target.task != "classification" for target in spec.targets) or not has_method(estimator, "predict_proba"):
        return False
    try:
        target_probabilities(estimator.predict_proba(model_input), spec.targets)
    except Exception:  # a layout other than one column per class of each target: the values alone are answered
        return False
    return True


def _multi_output(estimator: Any, width: int, names: list[str], *, classifier: bool) -> OutputSpec:
    """Each target's classes from `classes_` (one array per target); a multilabel classifier, whose `classes_` are the
    labels themselves, answers a 0/1 indicator per label."""
    if not names:
        names = [f"target_{index}" for index in range(width)]
    if len(names) != width:
        raise BundleFormatError(
            f"the model predicts {width} targets per row, but {len(names)} were named ({', '.join(names)}): "
            "name each, in the model's order, with --target (targets=[...] in Python)"
        )
    reserved = sorted(RESERVED_TARGET_NAMES.intersection(names))
    if reserved:
        raise BundleFormatError(f"a target cannot be named {', '.join(reserved)}: the name is a V2 output of every multi-output model")
    classes = getattr(estimator, "classes_", None)
    per_target: list[Any] = [None] * width
    if isinstance(classes, list) and len(classes) == width:
        per_target = list(classes)
    elif classifier:
        per_target = [[0, 1]] * width
    return OutputSpec(
        task="multi_output",
        targets=[
            Target(name=name, task="regression")
            if values is None
            else Target(name=name, task="classification", classes=[plain(value) for value in values])
            for name, values in zip(names, per_target, strict=True)
        ],
    )


def _onnx_file(onnx_bytes: bytes, labels: dict[Any, str]) -> OutputSpec:
    if onnx_output_count(onnx_bytes) < 2:
        return OutputSpec(task="regression")
    if not labels:
        raise BundleFormatError("an ONNX classifier file needs class_labels (or is packed from the fitted estimator)")
    return OutputSpec(task="classification", classes=[ModelClass(value=k, label=v) for k, v in labels.items()], probabilities=True)


def onnx_output_count(onnx_bytes: bytes) -> int:
    """A ready-made ONNX file answers values (one output: a regressor) or labels and probabilities (a classifier)."""
    import onnxruntime

    try:
        return len(onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).get_outputs())
    except Exception as exc:
        raise BundleFormatError(f"the ONNX file cannot be loaded: {type(exc).__name__}") from None


def plain(value: Any) -> Any:
    """numpy scalars to JSON-friendly Python values."""
    return value.item() if isinstance(value, np.generic) else value
