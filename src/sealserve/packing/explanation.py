"""What pack records for explanations: the means of a linear last step's input columns (the baseline of its exact
contributions) and, only when asked (`--background N`), a sample of training rows for the model-agnostic method."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from sealserve.bundle.metadata import BACKGROUND_FILE, ExplanationRecord, Feature
from sealserve.errors import BundleFormatError
from sealserve.runtime.explain.exact import column_means, is_linear
from sealserve.runtime.explain.sources import split_model, transformed

MAX_BACKGROUND = 1000


def explanation_record(
    estimator: Any, model_input: Any, sample: pd.DataFrame | None, features: Sequence[Feature], background: int, staging: Path
) -> ExplanationRecord | None:
    """The bundle's `explanation` field (None when there is nothing to record); writes the background file into `staging`."""
    means = _means(estimator, model_input) if estimator is not None and sample is not None else None
    background_file = None
    if background:
        if not 0 < background <= MAX_BACKGROUND:
            raise BundleFormatError(f"--background takes 1 to {MAX_BACKGROUND} rows, not {background}")
        if sample is None:
            raise BundleFormatError("--background N draws its rows from the training sample: pass --sample CSV")
        rows = sample.sample(n=min(background, len(sample)), random_state=0)
        path = staging / BACKGROUND_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(client_records(rows, features)))
        background_file = BACKGROUND_FILE
    if means is None and background_file is None:
        return None
    return ExplanationRecord(column_means=means, background=background_file, background_rows=len(rows) if background_file else 0)


def client_records(rows: pd.DataFrame, features: Sequence[Feature]) -> list[dict[str, Any]]:
    """Sample rows (model-facing codes) as the records a client would send: category labels, null for missing."""
    labels = {feature.name: {code: label for label, code in feature.categories.items()} for feature in features if feature.categories}
    records = []
    for values in zip(*(rows[feature.name].tolist() for feature in features), strict=True):
        record = {}
        for feature, value in zip(features, values, strict=True):
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            record[feature.name] = None if missing else labels.get(feature.name, {}).get(value, value)
        records.append(record)
    return records


def _means(estimator: Any, model_input: Any) -> list[float] | None:
    split = split_model(estimator)
    if not is_linear(split.final):
        return None
    try:
        return column_means(split.final, transformed(split, model_input))
    except Exception:  # a preprocessing step that cannot transform the sample: no linear baseline, explanations say so
        return None
