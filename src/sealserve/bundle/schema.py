"""Typed request and response models built from a bundle's feature list, and features derived from data."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError, create_model

from sealserve.bundle.metadata import Feature, FeatureKind, FeatureStatistics, OutputSpec

if TYPE_CHECKING:  # pandas is needed at pack time only; the server starts without importing it
    import pandas as pd

HISTOGRAM_BINS = 10


def pascal_case(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9a-zA-Z]+", name) if part) or "Model"


def input_model(model_name: str, features: list[Feature]) -> type[BaseModel]:
    """One field per feature: numbers refuse NaN/Infinity, categories accept only their labels."""
    fields: dict[str, Any] = {name: (annotation, field) for name, annotation, field in (_field(f) for f in features)}
    config = ConfigDict(extra="forbid", allow_inf_nan=False, title=f"{pascal_case(model_name)}Input")
    return create_model(f"{pascal_case(model_name)}Input", __config__=config, **fields)


def _field(feature: Feature) -> tuple[str, Any, Any]:
    described = Field(description=feature.description or None)
    if feature.kind is FeatureKind.CATEGORY:
        labels = tuple((feature.categories or {}).keys())
        return feature.name, Literal[labels], described
    if feature.kind is FeatureKind.BOOLEAN:
        return feature.name, StrictBool, described
    base: Any = StrictInt if feature.kind is FeatureKind.INTEGER else StrictFloat
    return feature.name, Annotated[base, Field(ge=feature.minimum, le=feature.maximum)], described


def output_model(model_name: str, output: OutputSpec) -> type[BaseModel]:
    config = ConfigDict(extra="forbid", title=f"{pascal_case(model_name)}Output")
    if output.task == "regression":
        return create_model(f"{pascal_case(model_name)}Output", __config__=config, prediction=(float, ...))
    labels = tuple(item.label for item in output.classes)
    fields: dict[str, Any] = {"prediction": (Literal[labels], Field(description="The most likely class label."))}
    if output.probabilities:
        fields["probabilities"] = (dict[str, float], Field(description="Probability of each class label."))
    return create_model(f"{pascal_case(model_name)}Output", __config__=config, **fields)


def derive_features(sample: pd.DataFrame, overrides: dict[str, dict[str, Any]] | None = None) -> list[Feature]:
    """Feature names, kinds, ranges and categories as the data shows them; `overrides` wins per key."""
    overrides = overrides or {}
    unknown = set(overrides) - set(sample.columns)
    if unknown:
        raise ValueError(f"overrides name columns not in the sample: {sorted(unknown)}")
    features = []
    for column in sample.columns:
        series = sample[column]
        spec: dict[str, Any] = {"name": str(column), **_observed(series)}
        spec.update(overrides.get(str(column), {}))
        if spec.get("categories") is not None:
            spec["kind"] = FeatureKind.CATEGORY
            spec.pop("minimum", None)
            spec.pop("maximum", None)
        features.append(feature_from_spec(spec))
    return features


def feature_from_spec(spec: dict[str, Any]) -> Feature:
    """Validate one feature spec; the error names the feature and the offending key (ValueError)."""
    try:
        return Feature.model_validate(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"feature {spec.get('name')!r}: {where}: {first['msg']}") from None


def _observed(series: pd.Series) -> dict[str, Any]:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return {"kind": FeatureKind.BOOLEAN}
    if pd.api.types.is_numeric_dtype(series):
        values = series.dropna()
        kind = FeatureKind.INTEGER if pd.api.types.is_integer_dtype(series) else FeatureKind.NUMBER
        return {"kind": kind, "minimum": float(values.min()), "maximum": float(values.max())}
    labels = sorted(str(value) for value in series.dropna().unique())
    return {"kind": FeatureKind.CATEGORY, "categories": {label: label for label in labels}}


def feature_statistics(sample: pd.DataFrame, features: list[Feature]) -> dict[str, FeatureStatistics]:
    """Per-feature training distribution; numeric features get decile bins for drift scores."""
    statistics = {}
    for feature in features:
        series = sample[feature.name].dropna()
        if feature.kind is FeatureKind.CATEGORY:
            codes_to_labels = {code: label for label, code in (feature.categories or {}).items()}
            counts = series.map(codes_to_labels).fillna(series.astype(str)).value_counts()
            statistics[feature.name] = FeatureStatistics(count=int(series.size), frequencies={str(k): int(v) for k, v in counts.items()})
            continue
        values = series.to_numpy(dtype="float64")
        edges = np.unique(np.quantile(values, np.linspace(0, 1, HISTOGRAM_BINS + 1))) if values.size else np.array([])
        counts_per_bin = np.histogram(values, bins=edges)[0] if edges.size > 1 else np.array([values.size])
        statistics[feature.name] = FeatureStatistics(
            count=int(values.size),
            mean=_finite(values.mean()) if values.size else None,
            std=_finite(values.std()) if values.size else None,
            minimum=_finite(values.min()) if values.size else None,
            maximum=_finite(values.max()) if values.size else None,
            bin_edges=[float(edge) for edge in edges],
            bin_counts=[int(count) for count in counts_per_bin],
        )
    return statistics


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
