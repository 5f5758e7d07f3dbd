"""Pack time: compile the model to ONNX beside its reference file, and keep it only when both answer the sample alike.

Each side is fed exactly as the server feeds it: the reference estimator its usual input, the ONNX session the
column arrays of `InputAdapter(columns=True)`, both built from the same rows. Labels are compared as clients see
them (through the bundle's class labels). A model that does not convert, or disagrees, is never a pack failure:
the bundle then records why (`compiled_skipped`) and the server uses the reference runtime.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sealserve.bundle.metadata import COMPILED_FILE, BundleMetadata, CompiledModel, FeatureKind, InputShape, ModelFormat, ParityRecord
from sealserve.errors import BundleFormatError
from sealserve.packing.features import public_name
from sealserve.packing.onnx.export import TREE_MISSING_VALUES, export_compiled, has_sklearn_trees, model_parts
from sealserve.runtime.choice import COMPILED_TOLERANCE, parity_problem, tolerance_for
from sealserve.runtime.inputs import InputAdapter
from sealserve.runtime.predict import Prediction, Runtime, estimator_runtime, onnx_runtime
from sealserve.trust.boosters.served import booster_library
from sealserve.trust.load import load_onnx

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("sealserve.pack")

TEXT_SKIPPED = "text/records input stays on the reference runtime"
NO_SAMPLE_SKIPPED = "no sample to measure parity on (pass a sample of the training data)"
NOT_REQUESTED = "not compiled at pack time (compiled=False, CLI: --no-compile)"
PROBE_ROWS = 20
UNSEEN_CATEGORY = "sealserve-unseen-category"
MAX_REASON_LENGTH = 300
# onnxruntime implements its SVM kernels in float32 only ("Could not find an implementation for SVMRegressor(1)"):
# a double attempt at a model holding one is time spent on a known failure.
FLOAT_ONLY = frozenset({"sklearn.svm.SVC", "sklearn.svm.SVR", "sklearn.svm.NuSVC", "sklearn.svm.NuSVR", "sklearn.svm.OneClassSVM"})


class ParityError(Exception):
    """The compiled model cannot be compared with the reference, or answers where the reference refuses."""


@dataclass
class _Differences:
    rows: int = 0
    agreeing: int = 0
    probability: float | None = None
    value: float | None = None
    scale: float = 0.0

    def add(self, other: _Differences) -> None:
        self.rows += other.rows
        self.agreeing += other.agreeing
        self.probability = _larger(self.probability, other.probability)
        self.value = _larger(self.value, other.value)
        self.scale = max(self.scale, other.scale)


def compile_model(
    original: Any,
    estimator: Any,
    metadata: BundleMetadata,
    sample: pd.DataFrame | None,
    folder: Path,
    *,
    tolerance: float | None = None,
    cancelled: threading.Event | None = None,
) -> tuple[CompiledModel | None, str | None]:
    """Write `folder/model.onnx` and return its record, or write nothing and return why there is none.

    `original` is what the converter reads (a raw booster stays raw); `estimator` is the reference as served.
    Returns (None, None) for an ONNX bundle, whose model file is already the compiled form. `tolerance` defaults
    to COMPILED_TOLERANCE, the server's default too (a booster's is never looser than BOOSTER_TOLERANCE). Once
    `cancelled` is set no further conversion starts.
    """
    tolerance = tolerance_for(metadata, COMPILED_TOLERANCE if tolerance is None else tolerance)
    if metadata.format is ModelFormat.ONNX:
        return None, None
    if metadata.input_shape in (InputShape.RECORDS, InputShape.TEXT):
        return None, TEXT_SKIPPED
    if sample is None or len(sample) == 0:
        return None, NO_SAMPLE_SKIPPED
    nullable = [feature.name for feature in metadata.features if feature.nullable]
    if nullable and has_sklearn_trees(original):
        return None, f"{TREE_MISSING_VALUES} (nullable: {', '.join(nullable)})"
    started = time.perf_counter()
    path = folder / COMPILED_FILE
    reference_input = InputAdapter(metadata.features, metadata.input_shape).from_sample(sample)
    failures: list[str] = []
    for double in _precisions(original):
        if cancelled is not None and cancelled.is_set():
            break
        try:
            path.write_bytes(export_compiled(original, reference_input, double=double))
            parity = measure_parity(estimator, _load(path), metadata, sample, tolerance)
        except Exception as exc:  # a converter or runtime failure only means there is no compiled form
            failures.append(_reason(exc))
            continue
        problem = parity_problem(parity, tolerance)
        if problem is None:
            logger.info("%s: compiled to ONNX in %.2fs; parity %s", metadata.name, time.perf_counter() - started, parity)
            return CompiledModel(file=COMPILED_FILE, parity=parity), None
        failures.append(problem)  # float32 would not agree better than double
        break
    path.unlink(missing_ok=True)
    reason = "; ".join(dict.fromkeys(failures))
    logger.info("%s: no compiled form (%.2fs): %s", metadata.name, time.perf_counter() - started, reason)
    return None, reason


def _precisions(original: Any) -> tuple[bool, ...]:
    """Whether to try double, then float32: a booster stays double (float32 could not agree better), an SVM float32."""
    if booster_library(original) is not None:
        return (True,)
    if any(public_name(part) in FLOAT_ONLY for part in model_parts(original)):
        return (False,)
    return (True, False)


def _load(path: Path) -> Any:
    """The session exactly as the server loads it; when it cannot load, the reason names onnxruntime's complaint."""
    try:
        return load_onnx(path)
    except BundleFormatError:
        import onnxruntime

        try:
            onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            detail = re.sub(r"^Load model from .* failed:", "", str(exc).split(" : ")[-1])  # no staging paths in the metadata
            raise BundleFormatError(f"onnxruntime cannot load the converted model: {detail}") from None
        raise


def measure_parity(estimator: Any, session: Any, metadata: BundleMetadata, sample: pd.DataFrame, tolerance: float) -> ParityRecord:
    """Both runtimes on the sample, then on sample rows with each nullable feature missing and each category that
    accepts unknown labels given one it never saw: what clients may send beyond the sample."""
    reference = estimator_runtime(estimator, metadata.output)
    compiled = onnx_runtime(session)
    adapters = InputAdapter(metadata.features, metadata.input_shape), InputAdapter(metadata.features, metadata.input_shape, columns=True)
    differences = _compare(reference(adapters[0].from_sample(sample)), compiled(adapters[1].from_sample(sample)), metadata)
    probes: list[tuple[str, str | None]] = [(feature.name, None) for feature in metadata.features if feature.nullable]
    probes += [
        (feature.name, UNSEEN_CATEGORY) for feature in metadata.features if feature.kind is FeatureKind.CATEGORY and feature.allow_unknown
    ]
    for name, replacement in probes:
        probe = sample.head(PROBE_ROWS).copy()
        probe[name] = replacement
        found = _probe(reference, compiled, adapters, probe, metadata, "a missing" if replacement is None else "an unseen", name)
        if found is not None:
            differences.add(found)
    classification = metadata.output.task == "classification"
    value = None
    if differences.value is not None:
        value = differences.value / (differences.scale or 1.0)
    return ParityRecord(
        rows=differences.rows,
        label_agreement=differences.agreeing / differences.rows if classification else None,
        max_abs_probability_diff=differences.probability,
        max_abs_value_diff=value,
        tolerance=tolerance,
    )


def _probe(
    reference: Runtime,
    compiled: Runtime,
    adapters: tuple[InputAdapter, InputAdapter],
    probe: pd.DataFrame,
    metadata: BundleMetadata,
    what: str,
    name: str,
) -> _Differences | None:
    """Rows with `what` value of `name`: both runtimes must answer alike, or both refuse."""
    try:
        expected = reference(adapters[0].from_sample(probe))
    except Exception:
        expected = None
    try:
        served = compiled(adapters[1].from_sample(probe))
    except Exception as exc:
        if expected is None:
            return None
        raise ParityError(f"parity: the compiled model cannot take {what} {name!r} ({type(exc).__name__}); the reference can") from None
    if expected is None:
        raise ParityError(f"parity: the reference model refuses {what} {name!r} but the compiled model would answer")
    return _compare(expected, served, metadata)


def _compare(expected: Prediction, served: Prediction, metadata: BundleMetadata) -> _Differences:
    rows = len(expected.values)
    if len(served.values) != rows:
        raise ParityError(f"parity: the compiled model answered {len(served.values)} rows for {rows}")
    if metadata.output.task == "regression":
        want = np.asarray(expected.values, dtype=np.float64)
        got = np.asarray(served.values, dtype=np.float64)
        if got.shape != want.shape:
            raise ParityError(f"parity: the compiled model answers shape {got.shape}, the reference {want.shape}")
        finite = np.abs(want[np.isfinite(want)])
        return _Differences(rows=rows, value=_worst(got, want), scale=float(finite.max()) if finite.size else 0.0)
    label_of = {item.value: item.label for item in metadata.output.classes}
    wanted = [label_of.get(value, str(value)) for value in expected.values.tolist()]
    given = [label_of.get(value, str(value)) for value in served.values.tolist()]
    differences = _Differences(rows=rows, agreeing=sum(a == b for a, b in zip(wanted, given, strict=True)))
    if metadata.output.probabilities and expected.probabilities is not None:
        if served.probabilities is None or served.probabilities.shape != expected.probabilities.shape:
            shape = None if served.probabilities is None else served.probabilities.shape
            reference_shape = expected.probabilities.shape
            raise ParityError(f"parity: the compiled model's probabilities have shape {shape}, the reference's {reference_shape}")
        differences.probability = _worst(served.probabilities, expected.probabilities)
    return differences


def _worst(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference; equal infinities and NaN on both sides agree, NaN on one side is infinitely far."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        difference = np.where(got == want, 0.0, np.abs(got - want))
    difference = np.where(np.isnan(got) & np.isnan(want), 0.0, difference)
    return float(np.nan_to_num(difference, nan=np.inf).max()) if difference.size else 0.0


def _larger(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return first if second is None else second
    return max(first, second)


def _reason(exc: Exception) -> str:
    from sealserve.errors import SealserveError
    from sealserve.packing.onnx.trees import InexactTreesError

    message = " ".join(str(exc).split())
    if not isinstance(exc, SealserveError | ParityError | InexactTreesError):
        message = f"{type(exc).__name__}: {message}"
    return message if len(message) <= MAX_REASON_LENGTH else message[: MAX_REASON_LENGTH - 1] + "…"
