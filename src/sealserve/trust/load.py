"""Deserialize a verified model file, each format behind its own allow-list."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sealserve.bundle.metadata import BundleMetadata, ModelFormat
from sealserve.errors import BundleFormatError, BundleTooLargeError, UnsafeModelError
from sealserve.trust.boosters.load import check_booster_file, load_booster
from sealserve.trust.boosters.pipeline import attach_booster_step, audit_booster_step
from sealserve.trust.integrity.walk import check_structures
from sealserve.trust.policy.memory import ArrayBudget, check_skops_file
from sealserve.trust.policy.onnx_graph import parse_onnx
from sealserve.trust.policy.skops_schema import skops_io, untrusted_types
from sealserve.trust.policy.trusted_types import refused_types


def load_model_file(
    path: Path,
    model_format: ModelFormat,
    *,
    trusted_types: Iterable[str] = (),
    allow_pickle: bool = False,
    metadata: BundleMetadata | None = None,
) -> Any:
    """Load a model file that has already been verified; unsafe content is refused, not run.

    The policy is the built-in allow-list plus `trusted_types`. With `metadata`, a skops file must need no type its
    signed metadata does not declare (a pipeline's booster step, beside it, is put back), and XGBoost/LightGBM files
    must be the model the metadata describes.
    """
    if model_format is ModelFormat.ONNX:
        return load_onnx(path)
    if model_format in (ModelFormat.XGBOOST, ModelFormat.LIGHTGBM):
        if metadata is None:
            raise BundleFormatError(f"{path.name} is loaded from its bundle's metadata only")
        classes = [item.value for item in metadata.output.classes] if metadata.output.task == "classification" else None
        return load_booster(path, model_format.value, metadata.estimator, classes=classes, n_features=len(metadata.features))
    if model_format is ModelFormat.SKOPS:
        model = load_skops(path, trusted_types, metadata.required_types if metadata is not None else None)
        return attach_booster_step(model, path.parent, metadata) if metadata is not None else model
    if not allow_pickle:
        raise UnsafeModelError(f"{path.name} is pickle-based (joblib); loading it needs allow_pickle: true")
    return load_joblib(path, set(trusted_types))


def audit_model_file(path: Path, metadata: BundleMetadata, *, trusted_types: Iterable[str] = ()) -> None:
    """Everything loading would check before constructing the reference model, without constructing it."""
    if metadata.format is ModelFormat.SKOPS:
        audit_skops(path, trusted_types, metadata.required_types)
        audit_booster_step(path.parent, metadata)
    elif metadata.format in (ModelFormat.XGBOOST, ModelFormat.LIGHTGBM):
        check_booster_file(path, "xgboost" if metadata.format is ModelFormat.XGBOOST else "lightgbm")
    elif metadata.format is ModelFormat.ONNX:
        parse_onnx(path.read_bytes(), path.name)
    elif metadata.format is ModelFormat.JOBLIB:
        raise UnsafeModelError(f"{path.name} is pickle-based; it serves only as itself, with allow_pickle")


def load_skops(path: Path, trusted_types: Iterable[str] = (), declared: Iterable[str] | None = None) -> Any:
    """Audit before construct: a bundle's declared types must be within the policy, and its file may need no more."""
    untrusted = audit_skops(path, trusted_types, declared)
    try:
        model = skops_io().load(path, trusted=list(untrusted))
    except Exception as exc:
        raise BundleFormatError(f"{path.name} could not be loaded by skops: {type(exc).__name__}") from None
    check_structures(model)
    return model


def audit_skops(path: Path, trusted_types: Iterable[str] = (), declared: Iterable[str] | None = None) -> list[str]:
    """The types a skops file needs, read from its schema; refused unless declared (when `declared`) and within the policy.

    The schema is read as skops reads it, without importing skops or scikit-learn (skops_schema.py; skops itself when
    the installed versions are not the snapshot's)."""
    check_skops_file(path)  # reading its schema reads every array file it names
    untrusted = untrusted_types(path)
    if declared is not None:
        undeclared = sorted(set(untrusted) - set(declared))
        if undeclared:
            raise UnsafeModelError(f"{path.name} needs types its signed metadata does not declare: {', '.join(undeclared)}")
    refused = refused_types(untrusted if declared is None else declared, path, extra_trusted=trusted_types)
    if refused:
        raise UnsafeModelError(f"{path.name} needs types outside the allow-list: {', '.join(refused)} (review them; trusted_types)")
    return list(untrusted)


def load_onnx(path: Path) -> Any:
    """An onnxruntime session of the model file, checked first (onnx_policy.py: no external data, no custom operator
    domains); onnxruntime gets the checked bytes, not the path, so it has no folder to resolve file references against."""
    import onnxruntime

    data = path.read_bytes()
    parse_onnx(data, path.name)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BundleFormatError(f"{path.name} is not a loadable ONNX model: {type(exc).__name__}") from None


def load_joblib(path: Path, extra_globals: set[str]) -> Any:
    """Unpickle with joblib's array support under the pickle policy plus operator-trusted names ("module.name").

    Nothing outside the policy is resolved, called, or given state (see sealserve.trust.unpickler); a refusal names
    what the stream asked for.
    """
    from joblib import numpy_pickle

    from sealserve.trust.policy.pickle_rules import pickle_policy
    from sealserve.trust.unpickler import RestrictedUnpickler

    policy = pickle_policy(name for name in extra_globals if "." in name)
    with path.open("rb") as handle, numpy_pickle._validate_fileobject_and_memmap(handle, str(path), None) as (stream, _):
        if isinstance(stream, str):
            raise UnsafeModelError(f"{path.name} uses joblib's pre-0.10 format, which is refused")
        try:
            model = RestrictedUnpickler(path, stream, policy, ArrayBudget(path, handle if stream is handle else None)).load()
            trailing = stream.read(1)
        except (UnsafeModelError, BundleTooLargeError, BundleFormatError):  # ours, naming what was refused
            raise
        except Exception as exc:
            raise BundleFormatError(f"{path.name} could not be unpickled: {type(exc).__name__}") from None
        if trailing:  # a second pickle (scanners read it, the loader would not): no bytes go unread
            raise BundleFormatError(f"{path.name} carries data after its pickle")
    check_structures(model)
    return model
