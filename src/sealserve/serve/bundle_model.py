"""An MLModel backed by a verified bundle: validated records become numpy rows, rows become outputs."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from sealserve.bundle.metadata import BundleMetadata, FeatureKind, ModelFormat
from sealserve.bundle.schema import input_model, output_model
from sealserve.model import MLModel

Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class BundleModel(MLModel):
    """Everything that can be computed once (encoders, label tables, schemas) is computed at load time."""

    def __init__(self, metadata: BundleMetadata, estimator: Any) -> None:
        self.metadata = metadata
        self._input_schema = input_model(metadata.name, metadata.features)
        self._output_schema = output_model(metadata.name, metadata.output)
        self._read_fields = operator.attrgetter(*metadata.feature_names)
        self._single_feature = len(metadata.features) == 1
        self._encoders: list[dict[str, Any] | None] = [
            feature.categories if feature.kind is FeatureKind.CATEGORY else None for feature in metadata.features
        ]
        self._dtype = (
            "float64" if all(isinstance(code, int | float) for enc in self._encoders if enc for code in enc.values()) else "object"
        )
        self._labels = [item.label for item in metadata.output.classes]
        self._label_of = {item.value: item.label for item in metadata.output.classes}
        self._classification = metadata.output.task == "classification"
        self._with_probabilities = metadata.output.probabilities
        self._predict_rows: Predictor = (
            onnx_predictor(estimator) if metadata.format is ModelFormat.ONNX else sklearn_predictor(estimator, self._with_probabilities)
        )

    @property
    def display_name(self) -> str:
        return self.metadata.name.replace("_", " ").title()

    @property
    def qualified_name(self) -> str:
        return self.metadata.name

    @property
    def description(self) -> str:
        return self.metadata.description

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def input_schema(self) -> type[BaseModel]:
        return self._input_schema

    @property
    def output_schema(self) -> type[BaseModel]:
        return self._output_schema

    def predict(self, data: Any) -> BaseModel:
        return self.predict_rows(np.array([self.encode(data)], dtype=self._dtype))[0]

    def predict_batch(self, data: Sequence[Any]) -> list[BaseModel]:
        return self.predict_rows(np.array([self.encode(item) for item in data], dtype=self._dtype))

    def encode(self, record: Any) -> list[Any]:
        """One validated record as a row in feature order, category labels turned into codes."""
        values = (self._read_fields(record),) if self._single_feature else self._read_fields(record)
        return [value if encoder is None else encoder[value] for value, encoder in zip(values, self._encoders, strict=True)]

    def predict_rows(self, rows: np.ndarray) -> list[BaseModel]:
        predictions, probabilities = self._predict_rows(rows)
        build = self._output_schema.model_construct
        if not self._classification:
            return [build(prediction=float(value)) for value in predictions]
        if probabilities is None or not self._with_probabilities:
            return [build(prediction=self._label_of.get(_plain(value), str(value))) for value in predictions]
        labels = self._labels
        return [
            build(prediction=labels[int(row.argmax())], probabilities=dict(zip(labels, row.tolist(), strict=True))) for row in probabilities
        ]


def sklearn_predictor(estimator: Any, with_probabilities: bool) -> Predictor:
    """Feed numpy rows; a DataFrame only when the estimator was fitted on one and needs its column names."""
    columns = getattr(estimator, "feature_names_in_", None)
    if columns is not None:
        import pandas as pd

    def as_input(rows: np.ndarray) -> Any:
        return rows if columns is None else pd.DataFrame(rows, columns=columns)

    if with_probabilities:
        return lambda rows: (np.empty(0), estimator.predict_proba(as_input(rows)))
    return lambda rows: (estimator.predict(as_input(rows)), None)


def onnx_predictor(session: Any) -> Predictor:
    input_name = session.get_inputs()[0].name
    output_names = [output.name for output in session.get_outputs()]

    def run(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = session.run(output_names, {input_name: rows.astype(np.float32)})
        if len(outputs) < 2:
            return np.asarray(outputs[0]).reshape(len(rows)), None
        probabilities = outputs[1]
        if isinstance(probabilities, list):
            probabilities = np.array([list(row.values()) for row in probabilities])
        return np.asarray(outputs[0]), np.asarray(probabilities, dtype=np.float64)

    return run


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
