"""The model's input in the shape it was fitted on: numpy rows, a typed DataFrame, dict records or raw text.

Pack and serve build it with the same `InputAdapter`, so a bundle that packs is fed at serve time exactly as
pack checked it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sealserve.bundle.metadata import Feature, FeatureKind, InputShape
from sealserve.bundle.schema import field_names

if TYPE_CHECKING:
    import pandas as pd

Row = Sequence[Any]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Column = Callable[[Sequence[Any] | np.ndarray], Any]


def detect_input_shape(model: Any) -> InputShape:
    """Dict records for a DictVectorizer front, text for a text vectorizer, a DataFrame when fitted on one."""
    front = pipeline_front(model)
    kind = type(front).__name__
    input_type = getattr(front, "input_type", None)
    if kind == "DictVectorizer" or (kind == "FeatureHasher" and input_type == "dict"):
        return InputShape.RECORDS
    if kind in ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer") or (kind == "FeatureHasher" and input_type == "string"):
        return InputShape.TEXT
    if getattr(model, "feature_names_in_", None) is not None:
        return InputShape.FRAME
    return InputShape.ROWS


def pipeline_front(model: Any) -> Any:
    """The first step that sees the raw input (nested pipelines unwrapped)."""
    while hasattr(model, "steps") and model.steps:
        model = next((step for _, step in model.steps if step not in (None, "passthrough")), model.steps[0][1])
    return model


class InputAdapter:
    """Validated records (objects with one attribute per feature) or a training sample → the model's input."""

    def __init__(self, features: Sequence[Feature], shape: InputShape, *, columns: bool = False) -> None:
        """With `columns`, a DataFrame-shaped input is a dict of typed column arrays (what ONNX takes), not a DataFrame."""
        if shape is InputShape.TEXT and len(features) != 1:
            raise ValueError(f"a text model takes exactly one feature, not {len(features)}")
        self.shape = shape
        self._frame_as_columns = columns
        self.names = [feature.name for feature in features]
        by_field = operator.itemgetter(*field_names(list(features)))
        by_name = operator.itemgetter(*self.names)
        names, single, optional = self.names, len(self.names) == 1, any(feature.nullable for feature in features)

        def read(record: Any) -> Row:
            """A validated record: a dict keyed by feature name (batches; nullable features may be absent) or a model."""
            if isinstance(record, dict) and optional:
                return tuple(record.get(name) for name in names)
            values = by_name(record) if isinstance(record, dict) else by_field(vars(record))
            return (values,) if single else values

        self._read: Callable[[Any], Row] = read
        self._codes = [_code_table(feature) for feature in features]
        self._coded = [(position, table) for position, table in enumerate(self._codes) if table is not None]
        self._numeric = all(_is_numeric(feature) for feature in features)
        self._columns = [column_builder(feature) for feature in features]
        self._assemble: Callable[[list[Row]], Any] = {
            InputShape.ROWS: self._rows,
            InputShape.FRAME: self._column_arrays if columns else self._frame,
            InputShape.RECORDS: self._records,
            InputShape.TEXT: self._text,
        }[shape]

    def from_records(self, records: Iterable[Any]) -> Any:
        """Category labels become the codes the model saw; null stays missing."""
        return self._assemble([self._encode(self._read(record)) for record in records])

    def client_rows(self, records: Iterable[Any]) -> list[Row]:
        """Validated records as rows in feature order, values as the client sent them (labels, None for null)."""
        return [self._read(record) for record in records]

    def from_columns(self, columns: dict[str, np.ndarray]) -> Any:
        """Model-facing column arrays (codes, not labels; no nulls), one per feature: the batch path without rows."""
        arrays = [columns[name] for name in self.names]
        if self.shape is InputShape.ROWS and self._numeric:
            return np.column_stack([np.asarray(array, dtype=np.float64) for array in arrays])
        if self.shape is InputShape.FRAME:
            built = {name: build(array) for name, build, array in zip(self.names, self._columns, arrays, strict=True)}
            return built if self._frame_as_columns else _data_frame(built)
        return self._assemble(list(zip(*(array.tolist() for array in arrays), strict=True)))

    def from_sample(self, sample: pd.DataFrame) -> Any:
        """A training sample already holds model-facing values (codes, not labels)."""
        import pandas as pd

        columns = [[None if pd.isna(value) else value for value in sample[name].tolist()] for name in self.names]
        return self._assemble(list(zip(*columns, strict=True)) if columns else [()] * len(sample))

    def _encode(self, values: Row) -> Row:
        if not self._coded:
            return values
        row = list(values)
        for position, table in self._coded:
            value = row[position]
            if value is not None:
                row[position] = table.get(value, value)
        return row

    def _rows(self, rows: list[Row]) -> np.ndarray:
        if self._numeric:
            return np.array(rows, dtype=np.float64)
        return np.array([[math.nan if value is None else value for value in row] for row in rows], dtype=object)

    def _frame(self, rows: list[Row]) -> pd.DataFrame:
        return _data_frame(self._column_arrays(rows))

    def _column_arrays(self, rows: list[Row]) -> dict[str, Any]:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.names]
        return {name: build(values) for name, build, values in zip(self.names, self._columns, columns, strict=True)}

    def _records(self, rows: list[Row]) -> list[dict[str, Any]]:
        names = self.names
        return [{name: value for name, value in zip(names, row, strict=True) if value is not None} for row in rows]

    def _text(self, rows: list[Row]) -> list[str]:
        return ["" if row[0] is None else row[0] for row in rows]


def column_builder(feature: Feature) -> Column:
    """One DataFrame column with the training dtype: ints stay ints when every value is whole, strings stay strings."""
    dtype = feature.dtype or _default_dtype(feature)
    if dtype == "category":
        import pandas as pd

        categories = list((feature.categories or {}).values())
        return lambda values: pd.Categorical(values, categories=categories)
    if dtype in ("bool", "boolean"):
        return lambda values: np.array(values, dtype=bool) if None not in values else np.array(_nan_for_none(values), dtype=object)
    if dtype.lower().startswith(("int", "uint")):
        return _integers
    if dtype in ("float32", "Float32"):
        return lambda values: np.array(values, dtype=np.float32)
    if dtype.lower().startswith("float"):
        return lambda values: np.array(values, dtype=np.float64)
    return lambda values: np.array(_nan_for_none(values), dtype=object)


def _data_frame(columns: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns)


def _integers(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    if all((type(value) is int or (type(value) is float and value.is_integer())) and INT64_MIN <= value <= INT64_MAX for value in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


def _default_dtype(feature: Feature) -> str:
    if feature.kind is FeatureKind.BOOLEAN:
        return "bool"
    if feature.kind in (FeatureKind.NUMBER, FeatureKind.INTEGER) or _is_numeric(feature):
        return "float64"
    return "object"


def _is_numeric(feature: Feature) -> bool:
    if feature.kind is FeatureKind.CATEGORY:
        return all(isinstance(code, int | float) and not isinstance(code, bool) for code in (feature.categories or {}).values())
    return feature.kind is not FeatureKind.TEXT


def _code_table(feature: Feature) -> dict[str, Any] | None:
    """Label → code, only where they differ (coded categories such as EXCELLENT → 1.0)."""
    if feature.kind is not FeatureKind.CATEGORY or not feature.categories:
        return None
    if all(label == code for label, code in feature.categories.items()):
        return None
    return dict(feature.categories)


def _nan_for_none(values: Sequence[Any] | np.ndarray) -> list[Any]:
    return [math.nan if value is None else value for value in values]
