"""An MLModel backed by a verified bundle: validated records or columns become the model's input, its arrays the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from sealserve.bundle.metadata import BundleMetadata, ModelFormat
from sealserve.bundle.schema import input_model, output_model
from sealserve.model import MLModel
from sealserve.runtime.answer_check import check_answers
from sealserve.runtime.answers import Classes, Predictions
from sealserve.runtime.columns import Columns
from sealserve.runtime.encoders import encoders_for
from sealserve.runtime.explain.reference import ExplanationSource
from sealserve.runtime.inputs import InputAdapter
from sealserve.runtime.predict import Prediction, Runtime, estimator_runtime, onnx_runtime, runtime_name

__all__ = ["BundleModel", "Classes", "Predictions"]


class BundleModel(MLModel):
    """Everything that can be computed once (input adapter, label tables, schemas) is computed at load time.

    `estimator` is what serves: the reference model, or with `compiled` the bundle's compiled form (an ONNX Runtime
    session, fed column arrays). `compiled_skipped` says why the reference serves when the bundle is not ONNX.
    `explanation`: what explanations need from the bundle folder (the reference model's files when the compiled form serves).
    """

    def __init__(
        self,
        metadata: BundleMetadata,
        estimator: Any,
        *,
        compiled: bool = False,
        compiled_skipped: str | None = None,
        explanation: ExplanationSource | None = None,
    ) -> None:
        self.metadata, self.estimator, self.explanation = metadata, estimator, explanation
        self._input_schema = input_model(metadata.name, metadata.features)
        self._output_schema = output_model(metadata.name, metadata.output)
        onnx = compiled or metadata.format is ModelFormat.ONNX
        self.adapter = InputAdapter(metadata.features, metadata.input_shape, columns=onnx)
        self.runtime: Runtime = onnx_runtime(estimator) if onnx else estimator_runtime(estimator, metadata.output)
        self.runtime_name = runtime_name(metadata, compiled)
        self.compiled_skipped = None if onnx else compiled_skipped
        self.classes = Classes(metadata)
        self.encoders = encoders_for(metadata.output)
        self._labels_of_codes = {
            feature.name: {code: label for label, code in feature.categories.items()}
            for feature in metadata.features
            if feature.categories and any(label != code for label, code in feature.categories.items())
        }

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
        return self.predict_batch((data,))[0]

    def predict_batch(self, data: Sequence[Any]) -> list[BaseModel]:
        """The public MLModel call (the server answers from `predict_records`): validated, so nested answers (a
        multi-output model's targets) become their models."""
        build = self._output_schema.model_validate
        return [build(output) for output in self.encoders.native(self.predict_records(data))]

    def predict_records(self, records: Sequence[Any]) -> Predictions:
        """Validated records (schema instances or dicts keyed by feature) → the answer as arrays."""
        return self.answer(self.runtime(self.adapter.from_records(records)))

    def predict_columns(self, columns: dict[str, np.ndarray]) -> Predictions:
        """Validated, model-facing column arrays (see `ColumnCheck`) → the answer as arrays."""
        return self.answer(self.runtime(self.adapter.from_columns(columns)))

    def client_columns(self, batch: Columns | Sequence[Any]) -> list[list[Any]]:
        """A validated batch of either form as each feature's values the way clients send them (labels, not codes)."""
        if not isinstance(batch, Columns):
            return [list(column) for column in zip(*self.adapter.client_rows(batch), strict=True)] or [[] for _ in self.adapter.names]
        columns = []
        for name in self.adapter.names:
            values = batch.arrays[name].tolist()
            labels = self._labels_of_codes.get(name)
            columns.append(values if labels is None else [labels.get(value, value) for value in values])
        return columns

    def answer(self, prediction: Prediction) -> Predictions:
        return Predictions.of(self.classes, prediction)

    def check_answers(self, predictions: Predictions) -> None:
        """Encode `predictions` for every protocol as the server answers them (BundleFormatError naming the one that fails)."""
        check_answers(self.encoders, self._output_schema, predictions)
