"""Build a signed bundle from a fitted model and a sample of its training data."""

from __future__ import annotations

import functools
import json
import platform
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sealserve.bundle import files, keys
from sealserve.bundle.metadata import (
    BOOSTER_STEP_MAJOR,
    METADATA_FILE,
    BundleMetadata,
    Feature,
    FeatureKind,
    InputShape,
    ModelFormat,
    check_name,
    check_version,
)
from sealserve.bundle.schema import derive_features, feature_from_spec, feature_statistics, input_model, output_model, text_feature
from sealserve.errors import BundleFormatError, UnsafeModelError
from sealserve.packing import signing
from sealserve.packing.attempt import DEFAULT_COMPILE_TIMEOUT, attempt_compile
from sealserve.packing.boosters import (
    BOOSTER_SUFFIXES,
    booster_hint,
    booster_step_of,
    read_booster_file,
    read_skops_with_boosters,
    save_booster,
    split_booster_step,
)
from sealserve.packing.compile import NOT_REQUESTED
from sealserve.packing.features import open_features
from sealserve.packing.onnx.export import check_parity, export_onnx
from sealserve.packing.outputs import output_spec
from sealserve.packing.signing import Credential, load_credential
from sealserve.runtime.answer_check import check_answers
from sealserve.runtime.answers import Classes, Predictions
from sealserve.runtime.choice import PICKLE_SERVES_ITSELF
from sealserve.runtime.encoders import encoders_for
from sealserve.runtime.inputs import InputAdapter, detect_input_shape
from sealserve.runtime.predict import runtime_for
from sealserve.trust.boosters.served import as_served, booster_library
from sealserve.trust.load import load_joblib, load_model_file, load_skops
from sealserve.trust.policy.onnx_graph import parse_onnx
from sealserve.trust.policy.trusted_types import refused_types

REPORTS_DIR = "reports"
PICKLE_SUFFIXES = {".joblib", ".pkl", ".pickle"}
LIBRARIES = (
    "sealserve",
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "skops",
    "onnxruntime",
    "skl2onnx",
    "joblib",
    "xgboost",
    "xgboost-cpu",
    "lightgbm",
)
ROUND_TRIP_TOLERANCE = 1e-9
SPLIT_SERVES_ITSELF = "a pipeline ending in an XGBoost or LightGBM estimator serves its reference model (skl2onnx converts no booster step)"


def pack(
    model: Any,
    *,
    name: str,
    version: str,
    private_key: Path | keys.SigningKey,
    out: Path,
    sample: pd.DataFrame | None = None,
    format: ModelFormat | str | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    class_labels: Mapping[Any, str] | None = None,
    targets: Sequence[str] = (),
    metrics: Mapping[str, float] | None = None,
    reports: Iterable[Path] = (),
    description: str = "",
    allow_pickle: bool = False,
    trust: Iterable[str] = (),
    compiled: bool = True,
    compile_timeout: float = DEFAULT_COMPILE_TIMEOUT,
    certificate: Path | None = None,
    chain: Sequence[Path] = (),
) -> Path:
    """Write a signed bundle to `out` (a new folder, or a `.zip` archive) and return its path.

    `model` is a fitted estimator or a model file (.skops, .onnx, XGBoost .json or .ubj, LightGBM .txt, or .joblib/.pkl
    with `allow_pickle`). A pipeline ending in an XGBoost or LightGBM estimator is stored split (its steps in skops,
    the booster in its own format).
    `sample` holds training features; `features` overrides derived specs per column. `format` defaults to
    skops (XGBoost and LightGBM: their own formats). `trust` names extra skops types the model needs. `targets` names
    the columns of a multi-output model's prediction (default target_0, target_1, ...).
    The written model is loaded back as the server would load it and must predict the sample identically.
    With `compiled` (the default) the bundle also carries the model compiled to ONNX (model.onnx) when it converts
    and agrees with the reference on the sample; otherwise its metadata says why not (`compiled_skipped`). A compile
    running longer than `compile_timeout` seconds is abandoned; what native libraries print meanwhile is captured.
    With `certificate` (PEM, the private key's) and `chain`, the signature carries the certificate chain instead of a key id.
    """
    if not compile_timeout > 0:
        raise BundleFormatError(f"compile_timeout must be a positive number of seconds, not {compile_timeout}")
    try:
        check_name(name)
        check_version(version)
    except ValueError as exc:
        raise BundleFormatError(str(exc)) from None
    trusted = frozenset(trust)
    original, onnx_bytes = _resolve_model(model, format, allow_pickle, trusted)
    model_format = choose_format(format, original)
    estimator = as_served(original) if booster_library(original) is not None else original
    if model_format is ModelFormat.JOBLIB and not allow_pickle:
        raise UnsafeModelError("the joblib format is pickle-based; pass allow_pickle=True to use it")
    signing_key = load_credential(private_key, certificate, chain)
    shape = detect_input_shape(estimator) if estimator is not None else InputShape.ROWS
    overrides = {k: dict(v) for k, v in (features or {}).items()}
    try:
        sample = model_sample(estimator, sample, shape)
        feature_specs = sample_features(sample, overrides, shape) if sample is not None else unsampled_features(estimator, overrides)
        if sample is not None and estimator is not None:
            feature_specs = open_features(original, estimator, feature_specs, shape, overrides, sample)
        adapter = InputAdapter(feature_specs, shape)
    except ValueError as exc:
        raise BundleFormatError(str(exc)) from None
    model_input = adapter.from_sample(sample) if sample is not None else np.zeros((1, len(feature_specs)))
    statistics = feature_statistics(sample, feature_specs) if sample is not None else {}
    output = output_spec(estimator, onnx_bytes, class_labels, targets, model_input)
    if output.format_major > 1 and model_format is ModelFormat.ONNX:
        raise BundleFormatError(f"the onnx format serves classification and regression; pack this {output.task} model with skops")

    staging = files.private_directory("sealserve-pack-")
    try:
        model_path = staging / model_format.filename
        stored, step = original, None
        if model_format is ModelFormat.SKOPS and booster_step_of(original) is not None:
            stored, step = split_booster_step(original, staging)
        required_types = write_model(stored, onnx_bytes, model_format, model_path, model_input, shape)
        refused = refused_types(required_types or (), model_path, extra_trusted=trusted)
        if refused:
            raise UnsafeModelError(
                f"the server's default policy would refuse this model: it needs {', '.join(refused)}. Review these types; "
                "to accept them pass --trust TYPE (trust=[...] in Python) and list them in the model's trusted_types in service.yaml"
            )
        report_names = _copy_reports(reports, staging)
        metadata = BundleMetadata(
            schema_version=max(output.format_major, BOOSTER_STEP_MAJOR if step is not None else 1),
            name=name,
            version=version,
            format=model_format,
            model_file=model_format.filename,
            created=datetime.now(UTC),
            description=description,
            library_versions=dict(library_versions()),
            features=feature_specs,
            output=output,
            input_shape=shape,
            estimator=qualified_name(original) if original is not None else "onnx",
            required_types=required_types,
            input_schema=input_model(name, feature_specs).model_json_schema(),
            output_schema=output_model(name, output).model_json_schema(),
            statistics=statistics,
            metrics=dict(metrics or {}),
            reports=report_names,
            booster_step=step,
        )
        check_round_trip(estimator, model_path, metadata, model_input, trusted, allow_pickle)
        if estimator is not None and model_format is not ModelFormat.ONNX:
            skipped: str | None = PICKLE_SERVES_ITSELF if model_format is ModelFormat.JOBLIB else NOT_REQUESTED
            compiled_form = None
            if output.format_major > 1:
                skipped = f"a {output.task} model serves its reference model (the compiled form covers classification and regression)"
            elif step is not None and compiled:
                skipped = SPLIT_SERVES_ITSELF
            elif compiled and model_format is not ModelFormat.JOBLIB:
                compiled_form, skipped = attempt_compile(original, estimator, metadata, sample, staging, timeout=compile_timeout)
            metadata = metadata.model_copy(update={"compiled": compiled_form, "compiled_skipped": skipped})
        (staging / METADATA_FILE).write_text(json.dumps(metadata.model_dump(mode="json"), indent=2) + "\n")
        sign_folder(staging, signing_key, subject=name)
        return _emit(staging, Path(out))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def choose_format(requested: ModelFormat | str | None, estimator: Any) -> ModelFormat:
    """XGBoost and LightGBM models go to their own data-only formats (or ONNX); everything else defaults to skops."""
    library = booster_library(estimator) if estimator is not None else None
    if requested is not None:
        model_format = ModelFormat(requested)
    elif estimator is None:
        model_format = ModelFormat.ONNX
    else:
        model_format = ModelFormat(library) if library is not None else ModelFormat.SKOPS
    if library is not None and model_format not in (ModelFormat(library), ModelFormat.ONNX):
        raise BundleFormatError(f"a {library} model packs in the {library} format (the default) or onnx, not {model_format.value}")
    if library is None and model_format in (ModelFormat.XGBOOST, ModelFormat.LIGHTGBM):
        raise BundleFormatError(f"the {model_format.value} format holds {model_format.value} models only, not {qualified_name(estimator)}")
    return model_format


def write_model(
    estimator: Any, onnx_bytes: bytes | None, model_format: ModelFormat, path: Path, model_input: Any, shape: InputShape
) -> list[str] | None:
    """Write the model file; return the skops types it needs (None for formats without types)."""
    if model_format is ModelFormat.ONNX:
        if onnx_bytes is None:
            if shape in (InputShape.RECORDS, InputShape.TEXT):
                raise BundleFormatError(f"--format onnx does not take {shape.value} input; pack this model with skops")
            onnx_bytes = export_onnx(estimator, model_input)
            check_parity(estimator, onnx_bytes, model_input)
        path.write_bytes(onnx_bytes)
        return None
    if model_format is ModelFormat.SKOPS:
        import skops.io

        try:
            skops.io.dump(estimator, path)
        except Exception as exc:
            raise BundleFormatError(f"skops cannot store this model: {type(exc).__name__}: {exc}") from None
        return sorted(skops.io.get_untrusted_types(file=path))
    if model_format in (ModelFormat.XGBOOST, ModelFormat.LIGHTGBM):
        save_booster(estimator, path)
        return None
    import joblib

    joblib.dump(estimator, path)
    return None


def check_round_trip(
    estimator: Any, path: Path, metadata: BundleMetadata, model_input: Any, trust: frozenset[str], allow_pickle: bool
) -> None:
    """Load the written file as the server will and prove it answers like the fitted model on the sample, in the shape
    of every protocol (the server's own encoders)."""
    reloaded = load_model_file(path, metadata.format, trusted_types=trust, allow_pickle=allow_pickle, metadata=metadata)
    try:
        served = runtime_for(reloaded, metadata)(model_input)
    except Exception as exc:
        raise BundleFormatError(f"the packed model cannot predict the sample once reloaded: {type(exc).__name__}: {exc}") from None
    answer = Predictions.of(Classes(metadata), served)
    check_answers(encoders_for(metadata.output), output_model(metadata.name, metadata.output), answer)
    if estimator is None or metadata.format is ModelFormat.ONNX:
        return
    fitted = runtime_for(estimator, metadata)(model_input)
    if not np.array_equal(np.asarray(served.values), np.asarray(fitted.values)):
        raise BundleFormatError("the packed model, reloaded, predicts different values on the sample than the fitted model")
    if fitted.scores is not None and (
        served.scores is None or not np.allclose(served.scores, fitted.scores, rtol=0, atol=ROUND_TRIP_TOLERANCE)
    ):
        raise BundleFormatError("the packed model, reloaded, gives different outlier scores on the sample than the fitted model")
    if fitted.probabilities is not None and (
        served.probabilities is None or not np.allclose(served.probabilities, fitted.probabilities, rtol=0, atol=ROUND_TRIP_TOLERANCE)
    ):
        raise BundleFormatError("the packed model, reloaded, gives different probabilities on the sample than the fitted model")


def model_sample(estimator: Any, sample: pd.DataFrame | None, shape: InputShape) -> pd.DataFrame | None:
    """The sample's columns in the order the model takes them; a mismatch is an error naming the columns."""
    if sample is None:
        if shape is not InputShape.ROWS:
            raise ValueError(f"this model takes {shape.value} input: pass a sample of the training data (CLI: --sample CSV)")
        return None
    sample = sample.copy()
    sample.columns = [str(column) for column in sample.columns]
    names = getattr(estimator, "feature_names_in_", None)
    if shape is InputShape.FRAME and names is not None:
        wanted = [str(name) for name in names]
        missing = [name for name in wanted if name not in sample.columns]
        if missing:
            raise ValueError(f"the sample lacks columns the model was fitted on: {missing}")
        extra = [name for name in sample.columns if name not in wanted]
        if extra:
            raise ValueError(f"the sample has columns the model was not fitted on: {extra} (drop the label with --target)")
        return sample[wanted]
    count = getattr(estimator, "n_features_in_", None)
    if shape is InputShape.ROWS and count is not None and int(count) != sample.shape[1]:
        raise ValueError(f"the model takes {int(count)} features; the sample has {sample.shape[1]} columns (drop the label with --target)")
    return sample


def sample_features(sample: pd.DataFrame, overrides: dict[str, dict[str, Any]], shape: InputShape) -> list[Feature]:
    return text_feature(sample, overrides) if shape is InputShape.TEXT else derive_features(sample, overrides)


def qualified_name(model: Any) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def sign_folder(folder: Path, key: keys.SigningKey | Credential, *, subject: str) -> None:
    """(Re)write model.sig over every other file in `folder`."""
    signing.sign_folder(folder, key if isinstance(key, Credential) else Credential(key), subject=subject)


@functools.cache
def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for library in LIBRARIES:
        try:
            found[library] = importlib_metadata.version(library)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _resolve_model(model: Any, requested: ModelFormat | str | None, allow_pickle: bool, trust: frozenset[str]) -> tuple[Any, bytes | None]:
    if not isinstance(model, str | Path):
        return model, None
    path = Path(model)
    if path.suffix == ".onnx":
        if requested is not None and ModelFormat(requested) is not ModelFormat.ONNX:
            raise BundleFormatError(f"{path.name} is an ONNX file; pack it with format onnx")
        data = path.read_bytes()
        parse_onnx(data, path.name)  # refused now rather than by every server: external data, custom operators
        return None, data
    if path.suffix == ".skops":
        with_boosters = read_skops_with_boosters(path, trust)
        if with_boosters is not None:
            return with_boosters, None
        try:
            return load_skops(path, trust), None
        except UnsafeModelError as exc:
            hint = booster_hint(exc)
            raise UnsafeModelError(f"{exc}. To accept reviewed types pass --trust TYPE (trust=[...] in Python){hint}") from None
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UnsafeModelError(f"{path.name} is a pickle; reading it needs allow_pickle (CLI: --allow-pickle)")
        try:
            return load_joblib(path, set(trust)), None
        except UnsafeModelError as exc:
            raise UnsafeModelError(f"{exc}{booster_hint(exc)}") from None
    if path.suffix in BOOSTER_SUFFIXES:
        return read_booster_file(path), None
    raise BundleFormatError(
        f"{path.name}: unknown model file type (expected .skops, .onnx, .json or .ubj (XGBoost), .txt (LightGBM), or .joblib/.pkl)"
    )


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
