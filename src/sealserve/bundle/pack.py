"""Build a signed bundle from a fitted model and a sample of its training data."""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sealserve.bundle import envelope, files, keys
from sealserve.bundle.loader import DEFAULT_TRUSTED_TYPES, load_joblib, load_skops
from sealserve.bundle.metadata import (
    METADATA_FILE,
    BundleMetadata,
    Feature,
    FeatureKind,
    ModelClass,
    ModelFormat,
    OutputSpec,
    check_name,
    check_version,
)
from sealserve.bundle.schema import derive_features, feature_from_spec, feature_statistics, input_model, output_model
from sealserve.errors import BundleFormatError, UnsafeModelError

REPORTS_DIR = "reports"
PICKLE_SUFFIXES = {".joblib", ".pkl", ".pickle"}
LIBRARIES = ("sealserve", "scikit-learn", "numpy", "scipy", "skops", "onnxruntime", "skl2onnx", "joblib")


def pack(
    model: Any,
    *,
    name: str,
    version: str,
    private_key: Path | keys.SigningKey,
    out: Path,
    sample: pd.DataFrame | None = None,
    format: ModelFormat | str = ModelFormat.SKOPS,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    class_labels: Mapping[Any, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    reports: Iterable[Path] = (),
    description: str = "",
    allow_pickle: bool = False,
) -> Path:
    """Write a signed bundle to `out` (a new folder, or a `.zip` archive) and return its path.

    `model` is a fitted estimator or a model file (.skops, .onnx, or .joblib/.pkl with `allow_pickle`).
    `sample` holds training features in model order; `features` overrides derived specs per column.
    """
    model_format = ModelFormat(format)
    try:
        check_name(name)
        check_version(version)
    except ValueError as exc:
        raise BundleFormatError(str(exc)) from None
    if model_format is ModelFormat.JOBLIB and not allow_pickle:
        raise UnsafeModelError("the joblib format is pickle-based; pass allow_pickle=True to use it")
    signing_key = private_key if isinstance(private_key, keys.SigningKey) else keys.read_private_key(Path(private_key))
    estimator, onnx_bytes = _resolve_model(model, model_format, allow_pickle)
    overrides = {k: dict(v) for k, v in (features or {}).items()}
    try:
        feature_specs = derive_features(sample, overrides) if sample is not None else unsampled_features(estimator, overrides)
    except ValueError as exc:
        raise BundleFormatError(str(exc)) from None
    if sample is not None:
        rows = encode_sample(sample, feature_specs)
        statistics = feature_statistics(sample, feature_specs)
    else:
        rows = np.zeros((1, len(feature_specs)))
        statistics = {}
    output = _output_spec(estimator, onnx_bytes, class_labels)

    staging = files.private_directory("sealserve-pack-")
    try:
        model_path = staging / model_format.filename
        if model_format is ModelFormat.ONNX:
            from sealserve.bundle.onnx_export import check_parity, export_onnx

            onnx_bytes = onnx_bytes or export_onnx(estimator, rows)
            model_path.write_bytes(onnx_bytes)
            if estimator is not None:
                check_parity(estimator, onnx_bytes, rows)
        elif model_format is ModelFormat.SKOPS:
            import skops.io

            _check_predicts(estimator, rows)
            skops.io.dump(estimator, model_path)
        else:
            import joblib

            _check_predicts(estimator, rows)
            joblib.dump(estimator, model_path)
        report_names = _copy_reports(reports, staging)
        metadata = BundleMetadata(
            name=name,
            version=version,
            format=model_format,
            model_file=model_format.filename,
            created=datetime.now(UTC),
            description=description,
            library_versions=library_versions(),
            features=feature_specs,
            output=output,
            input_schema=input_model(name, feature_specs).model_json_schema(),
            output_schema=output_model(name, output).model_json_schema(),
            statistics=statistics,
            metrics=dict(metrics or {}),
            reports=report_names,
        )
        (staging / METADATA_FILE).write_text(json.dumps(metadata.model_dump(mode="json"), indent=2) + "\n")
        sign_folder(staging, signing_key, subject=name)
        return _emit(staging, Path(out))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sign_folder(folder: Path, key: keys.SigningKey, *, subject: str) -> None:
    """(Re)write model.sig over every other file in `folder`."""
    (folder / files.SIGNATURE_FILE).unlink(missing_ok=True)
    digests = files.digest_files(files.list_files(folder))
    (folder / files.SIGNATURE_FILE).write_bytes(envelope.sign(subject, digests, key))


def encode_sample(sample: pd.DataFrame, features: list[Feature]) -> np.ndarray:
    """The sample as the model sees it: feature order, category labels already codes."""
    frame = sample[[feature.name for feature in features]]
    numeric = all(
        feature.kind is not FeatureKind.CATEGORY or all(not isinstance(code, str) for code in (feature.categories or {}).values())
        for feature in features
    )
    rows: np.ndarray = frame.to_numpy(dtype="float64" if numeric else "object")
    return rows


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for library in LIBRARIES:
        try:
            found[library] = importlib_metadata.version(library)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _resolve_model(model: Any, model_format: ModelFormat, allow_pickle: bool) -> tuple[Any, bytes | None]:
    if not isinstance(model, str | Path):
        return model, None
    path = Path(model)
    if path.suffix == ".onnx":
        if model_format is not ModelFormat.ONNX:
            raise BundleFormatError(f"{path.name} is an ONNX file; pack it with format onnx")
        return None, path.read_bytes()
    if path.suffix == ".skops":
        return load_skops(path, set(DEFAULT_TRUSTED_TYPES)), None
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UnsafeModelError(f"{path.name} is a pickle; reading it needs allow_pickle (CLI: --allow-pickle)")
        return load_joblib(path, set()), None
    raise BundleFormatError(f"{path.name}: unknown model file type (expected .skops, .onnx, .joblib or .pkl)")


def unsampled_features(estimator: Any, overrides: dict[str, dict[str, Any]]) -> list[Feature]:
    """Without training data only names are known: numeric features, no ranges, no drift reference."""
    names = getattr(estimator, "feature_names_in_", None)
    count = getattr(estimator, "n_features_in_", None)
    if names is None and count is None:
        raise BundleFormatError("pass a sample of the training data (CLI: --sample CSV) so the input schema can be derived")
    columns = [str(name) for name in names] if names is not None else [f"x{index}" for index in range(int(count or 0))]
    unknown = set(overrides) - set(columns)
    if unknown:
        raise ValueError(f"overrides name features the model does not have: {sorted(unknown)}")
    return [feature_from_spec({"name": name, "kind": FeatureKind.NUMBER} | overrides.get(name, {})) for name in columns]


def _output_spec(estimator: Any, onnx_bytes: bytes | None, class_labels: Mapping[Any, str] | None) -> OutputSpec:
    labels = {_plain(key): value for key, value in (class_labels or {}).items()}
    if estimator is None:
        if not labels:
            raise BundleFormatError("an ONNX file needs class_labels (or is packed from the fitted estimator)")
        return OutputSpec(task="classification", classes=[ModelClass(value=k, label=v) for k, v in labels.items()], probabilities=True)
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return OutputSpec(task="regression")
    values = [_plain(value) for value in classes]
    return OutputSpec(
        task="classification",
        classes=[ModelClass(value=value, label=labels.get(value, str(value))) for value in values],
        probabilities=hasattr(estimator, "predict_proba") and _has_working_proba(estimator),
    )


def _has_working_proba(estimator: Any) -> bool:
    try:
        return callable(estimator.predict_proba)
    except AttributeError:
        return False


def _check_predicts(estimator: Any, rows: np.ndarray) -> None:
    try:
        estimator.predict(rows[:5])
    except Exception as exc:
        raise BundleFormatError(f"the model cannot predict from the sample's columns in order: {type(exc).__name__}: {exc}") from None


def _copy_reports(reports: Iterable[Path], staging: Path) -> list[str]:
    names: list[str] = []
    for report in map(Path, reports):
        if not report.is_file():
            raise BundleFormatError(f"report {report} is not a file")
        name = f"{REPORTS_DIR}/{report.name}"
        if name in names:
            raise BundleFormatError(f"two reports are named {report.name}")
        (staging / REPORTS_DIR).mkdir(exist_ok=True)
        shutil.copyfile(report, staging / name)
        names.append(name)
    return names


def _emit(staging: Path, out: Path) -> Path:
    if out.suffix == ".zip":
        if out.exists():
            raise BundleFormatError(f"{out} already exists")
        files.write_zip(staging, out)
        return out
    if out.exists() and any(out.iterdir()):
        raise BundleFormatError(f"{out} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    files.copy_tree(files.list_files(staging), out)
    return out


def _plain(value: Any) -> Any:
    """numpy scalars to JSON-friendly Python values."""
    return value.item() if isinstance(value, np.generic) else value
