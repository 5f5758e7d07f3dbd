"""Inputs the model itself accepts: columns an encoder opens to unseen categories, columns an imputer or a NaN-aware model
takes as missing. `pack` opens them in the schema, after proving on sample rows that the model answers them."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sealserve.bundle.metadata import Feature, FeatureKind, InputShape
from sealserve.runtime.inputs import InputAdapter
from sealserve.trust.boosters.served import booster_library

if TYPE_CHECKING:
    import pandas as pd

IMPUTERS = frozenset({"sklearn.impute.SimpleImputer", "sklearn.impute.KNNImputer", "sklearn.impute.IterativeImputer"})
NAN_NATIVE = frozenset({"sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.ensemble.HistGradientBoostingRegressor"})
OPEN_ENCODERS = {
    "sklearn.preprocessing.OneHotEncoder": ("ignore", "infrequent_if_exist"),
    "sklearn.preprocessing.OrdinalEncoder": ("use_encoded_value",),
}
PASSTHROUGH = "sklearn.preprocessing.FunctionTransformer"
UNSEEN_CATEGORY = "sealserve-unseen-category"
PROBE_ROWS = 5


@dataclass(frozen=True)
class Accepted:
    """Input positions of one model part: `missing` takes NaN, `unknown` takes unseen categories."""

    missing: frozenset[int] = frozenset()
    unknown: frozenset[int] = frozenset()


def accepted_inputs(model: Any, width: int) -> Accepted:
    """What `model`, taking `width` input columns, accepts by its own construction (see docs/models.md)."""
    try:
        return _accepted(model, width, missing_after=False)
    except (AttributeError, TypeError, KeyError, IndexError):  # an unusual composite: claim nothing
        return Accepted()


def open_features(
    model: Any, served: Any, features: list[Feature], shape: InputShape, overrides: dict[str, dict[str, Any]], sample: pd.DataFrame
) -> list[Feature]:
    """`features` with what `model` accepts opened (`nullable`, `allow_unknown`), unless the user's override sets that
    key. Each opening is kept only when `served` (the model as the server runs it) answers sample rows holding such a
    value, fed as the server feeds it."""
    if shape not in (InputShape.ROWS, InputShape.FRAME) or not features:
        return features
    accepted = accepted_inputs(model, len(features))
    result = list(features)
    probe_rows = sample.head(PROBE_ROWS)
    for index, feature in enumerate(features):
        user = overrides.get(feature.name, {})
        update: dict[str, Any] = {}
        if index in accepted.missing and not feature.nullable and "nullable" not in user:
            update["nullable"] = _answers(served, shape, result, index, {"nullable": True}, probe_rows, None)
        if index in accepted.unknown and feature.kind is FeatureKind.CATEGORY and not feature.allow_unknown and "allow_unknown" not in user:
            update["allow_unknown"] = _answers(served, shape, result, index, {"allow_unknown": True}, probe_rows, UNSEEN_CATEGORY)
        if any(update.values()):
            result[index] = feature.model_copy(update={key: value for key, value in update.items() if value})
    return result


def _answers(
    served: Any,
    shape: InputShape,
    features: list[Feature],
    index: int,
    update: dict[str, Any],
    rows: pd.DataFrame,
    value: Any,
) -> bool:
    opened = list(features)
    opened[index] = features[index].model_copy(update=update)
    probe = rows.copy()
    probe[features[index].name] = [value] * len(probe)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model_input = InputAdapter(opened, shape).from_sample(probe)
            served.predict(model_input)
            if hasattr(served, "predict_proba"):
                served.predict_proba(model_input)
    except Exception:  # the model refuses such a value after all: the column stays closed
        return False
    return True


def _accepted(part: Any, width: int, *, missing_after: bool) -> Accepted:
    """`missing_after`: every part downstream of `part` takes NaN in every column `part` outputs."""
    everything = frozenset(range(width))
    if isinstance(part, str) or part is None:
        if part == "drop":
            return Accepted(missing=everything, unknown=everything)
        return Accepted(missing=everything if missing_after else frozenset())
    name = public_name(part)
    if name == PASSTHROUGH and getattr(part, "func", None) is None:  # how a fitted ColumnTransformer stores "passthrough"
        return Accepted(missing=everything if missing_after else frozenset())
    if name in IMPUTERS:
        return Accepted(missing=everything) if _imputes_nan(part) else Accepted()
    if name in NAN_NATIVE or booster_library(part) is not None:
        return Accepted(missing=everything)
    if name in OPEN_ENCODERS:
        opened = getattr(part, "handle_unknown", None) in OPEN_ENCODERS[name]
        passes_nan = missing_after and _allows_nan(part)
        return Accepted(missing=everything if passes_nan else frozenset(), unknown=everything if opened else frozenset())
    if hasattr(part, "steps"):
        return _pipeline(part, width, missing_after)
    if hasattr(part, "transformers_"):
        return _columns(part, missing_after)
    if missing_after and hasattr(part, "transform") and not hasattr(part, "predict") and _allows_nan(part):
        return Accepted(missing=everything)
    return Accepted()


def _pipeline(pipeline: Any, width: int, missing_after: bool) -> Accepted:
    steps = [step for _, step in pipeline.steps if step not in ("passthrough", None)]
    widths = [width, *(_width(step) for step in steps[1:])]
    downstream = missing_after
    later: Accepted | None = None
    for position in range(len(steps) - 1, -1, -1):
        step, step_width = steps[position], widths[position]
        if step_width is None:
            return Accepted()
        own = _accepted(step, step_width, missing_after=downstream)
        unknown = own.unknown
        if later is not None and public_name(step) in IMPUTERS and widths[position + 1] == step_width:
            unknown |= later.unknown  # an imputer keeps its columns in place: an encoder after it sees them unchanged
        later = Accepted(own.missing, unknown)
        downstream = own.missing == frozenset(range(step_width))
    return later or Accepted()


def _columns(transformer: Any, missing_after: bool) -> Accepted:
    indices: dict[str, list[int]] = transformer._transformer_to_input_indices
    missing: set[int] = set()
    unknown: set[int] = set()
    for name, part, _ in transformer.transformers_:
        columns = list(indices.get(name, []))
        if not columns:
            continue
        own = _accepted(part, len(columns), missing_after=missing_after)
        missing |= _positions(columns, own.missing)
        unknown |= _positions(columns, own.unknown)
    return Accepted(frozenset(missing), frozenset(unknown))


def _positions(columns: list[int], local: Iterable[int]) -> set[int]:
    return {int(columns[index]) for index in local}


def _width(step: Any) -> int | None:
    count = getattr(step, "n_features_in_", None)
    return int(count) if count is not None else None


def _imputes_nan(imputer: Any) -> bool:
    missing = getattr(imputer, "missing_values", math.nan)
    return isinstance(missing, float) and math.isnan(missing)


def _allows_nan(part: Any) -> bool:
    try:
        return bool(part.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        return False


def public_name(part: Any) -> str:
    """The public name of a scikit-learn class (`sklearn.impute.SimpleImputer`), else its defining module's."""
    module = type(part).__module__
    if module.startswith("sklearn."):
        module = ".".join(module.split(".")[:2])
    return f"{module}.{type(part).__qualname__}"
