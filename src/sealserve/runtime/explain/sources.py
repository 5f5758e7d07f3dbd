"""Which client features each column the final estimator sees comes from, so contributions sum back to what was sent.

A pipeline is split into its preprocessing and its last step; the preprocessing is read structurally (ColumnTransformer
column lists, one-hot widths, polynomial powers), never from column-name strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_CELLS = 4_000_000  # dense values per chunk of an explained batch (32 MB of float64)
Sources = list[frozenset[int]]  # per transformed column: the client features (positions) it is computed from

ELEMENTWISE = frozenset(
    {
        "StandardScaler",
        "MinMaxScaler",
        "MaxAbsScaler",
        "RobustScaler",
        "OrdinalEncoder",
        "PowerTransformer",
        "QuantileTransformer",
        "FunctionTransformer",
        "Binarizer",
        "TargetEncoder",
        "SplineTransformer",
    }
)


@dataclass(frozen=True)
class Split:
    """A model as its preprocessing (None: the final estimator takes the client's columns) and its last step."""

    preprocess: Any
    final: Any


def split_model(model: Any) -> Split:
    """The last step of a (nested) pipeline and everything before it; a bare estimator is its own last step."""
    steps = getattr(model, "steps", None)
    if not steps:
        return Split(None, model)
    final = steps[-1][1]
    if getattr(final, "steps", None):
        inner = split_model(final)
        head = model[:-1] if len(steps) > 1 else None
        if inner.preprocess is None:
            return Split(head, inner.final)
        from sklearn.pipeline import make_pipeline

        return Split(inner.preprocess if head is None else make_pipeline(head, inner.preprocess), inner.final)
    return Split(model[:-1] if len(steps) > 1 else None, final)


def transformed(split: Split, model_input: Any) -> np.ndarray:
    """The final estimator's input as a dense float matrix."""
    return np.concatenate(list(transformed_chunks(split, model_input)))


def transformed_chunks(split: Split, model_input: Any, max_cells: int = MAX_CELLS) -> Iterator[np.ndarray]:
    """The final estimator's input in dense row chunks of at most `max_cells` values: a text model's sparse vocabulary
    columns are made dense a few rows at a time, never for a whole batch."""
    data = model_input if split.preprocess is None else split.preprocess.transform(model_input)
    if hasattr(data, "to_numpy"):
        data = data.to_numpy()
    rows, columns = data.shape
    step = max(1, max_cells // max(1, columns))
    for start in range(0, rows, step):
        chunk = data[start : start + step]
        yield np.asarray(chunk.toarray() if hasattr(chunk, "toarray") else chunk, dtype=np.float64)


def sources_of(step: Any, inputs: Sources, names: Sequence[str]) -> Sources:
    """The sources of each output column of `step`, given those of its input columns (`names`: the client features)."""
    if step is None or step == "passthrough":
        return inputs
    kind = type(step).__name__
    if getattr(step, "steps", None):
        for _, inner in step.steps:
            inputs = sources_of(inner, inputs, names)
        return inputs
    if kind == "ColumnTransformer":
        return _column_transformer(step, inputs, names)
    if kind == "FeatureUnion":
        return [source for _, part in step.transformer_list if part != "drop" for source in sources_of(part, inputs, names)]
    if kind == "OneHotEncoder":
        widths = getattr(step, "_n_features_outs", None) or [len(c) for c in step.categories_]
        return [source for source, width in zip(inputs, widths, strict=True) for _ in range(int(width))]
    if kind == "SimpleImputer":
        kept = inputs if getattr(step, "keep_empty_features", False) else _kept(step, inputs)
        indicator = getattr(step, "indicator_", None)
        return kept + ([inputs[i] for i in indicator.features_] if indicator is not None else [])
    if kind == "KBinsDiscretizer" and step.encode != "ordinal":
        return [source for source, bins in zip(inputs, step.n_bins_, strict=True) for _ in range(int(bins))]
    if kind == "PolynomialFeatures":
        return [frozenset().union(*(inputs[i] for i in np.flatnonzero(row))) for row in step.powers_]
    if kind == "DictVectorizer":
        return [_dict_source(name, step.separator, names) for name in step.feature_names_]
    if kind in ("VarianceThreshold", "SelectKBest", "SelectPercentile", "SelectFromModel", "RFE", "RFECV"):
        return [inputs[i] for i in np.flatnonzero(step.get_support())]
    width = _width(step)
    if kind in ELEMENTWISE and width == len(inputs):
        return inputs
    every = frozenset().union(*inputs) if inputs else frozenset()
    return [every] * (width if width is not None else 1)


def client_sources(split: Split, names: Sequence[str]) -> Sources:
    """Per column of the final estimator's input: the client features it comes from."""
    identity = [frozenset({i}) for i in range(len(names))]
    return sources_of(split.preprocess, identity, names)


def _column_transformer(step: Any, inputs: Sources, names: Sequence[str]) -> Sources:
    positions = step._transformer_to_input_indices
    out: Sources = []
    for name, transformer, _ in step.transformers_:
        indices = positions.get(name, [])
        if transformer == "drop" or len(indices) == 0:
            continue
        out.extend(sources_of(transformer, [inputs[int(i)] for i in indices], names))
    return out


def _kept(step: Any, inputs: Sources) -> Sources:
    statistics = np.asarray(getattr(step, "statistics_", []), dtype=object)
    if len(statistics) != len(inputs):
        return inputs
    return [source for source, value in zip(inputs, statistics, strict=True) if not (isinstance(value, float) and np.isnan(value))]


def _dict_source(column: str, separator: str, names: Sequence[str]) -> frozenset[int]:
    key = column.split(separator, 1)[0]
    return frozenset({names.index(key)}) if key in names else frozenset(range(len(names)))


def _width(step: Any) -> int | None:
    try:
        return len(step.get_feature_names_out())
    except Exception:
        components = getattr(step, "n_components_", getattr(step, "n_components", None))
        return int(components) if isinstance(components, int) else None


def to_client(contributions: np.ndarray, sources: Sources, features: int) -> np.ndarray:
    """Sum [..., transformed columns] contributions into [..., client features]; a column computed from several
    features is shared equally among them (docs/explanations.md)."""
    matrix = np.zeros((len(sources), features))
    for column, source in enumerate(sources):
        if source:
            matrix[column, list(source)] = 1.0 / len(source)
    return contributions @ matrix
