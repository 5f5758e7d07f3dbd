"""An MLModel backed by a verified bundle: validated records or columns become the model's input, its arrays the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from sealserve.bundle.metadata import BundleMetadata, ModelFormat
from sealserve.bundle.schema import input_model, output_model
from sealserve.model import MLModel
from sealserve.runtime.columns import Columns
from sealserve.runtime.inputs import InputAdapter
from sealserve.runtime.predict import Prediction, Runtime, estimator_runtime, onnx_runtime, runtime_name


class Classes:
    """A classifier's label tables, built once per model: class value → label, and labels in probability-column order."""

    def __init__(self, metadata: BundleMetadata) -> None:
        self.labels = [item.label for item in metadata.output.classes]
        self.label_of = {item.value: item.label for item in metadata.output.classes}
        self.answer_of = metadata.output.answers()
        self.decoded = metadata.output.decoded
        self.classification = metadata.output.task == "classification"
        self.with_probabilities = self.classification and metadata.output.probabilities


class Predictions:
    """A batch's answer kept as arrays (class values or numbers, probabilities); labels and objects only on request.

    Protocols read the arrays they need; slicing gives each caller of a shared batch its own rows.
    """

    def __init__(self, classes: Classes, values: np.ndarray, probabilities: np.ndarray | None) -> None:
        self.classes, self.values = classes, values
        self.probabilities = probabilities if classes.with_probabilities else None

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: slice) -> Predictions:
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        return Predictions(self.classes, self.values[rows], probabilities)

    def labels(self) -> list[Any]:
        """Class labels as text (classifiers) or numbers (regressors), one per row."""
        if not self.classes.classification:
            return [float(value) for value in self.values.tolist()]
        label_of = self.classes.label_of
        return [label_of.get(value, str(value)) for value in self.values.tolist()]

    def answers(self) -> list[Any]:
        """One JSON value per row, the same on every protocol: the label when the bundle declares readable labels,
        else the class value keeping its type (1 stays 1, True stays true), or the number a regressor predicts."""
        if not self.classes.classification:
            return [float(value) for value in self.values.tolist()]
        distinct, rows = self.coded_answers()
        answers = np.empty(len(distinct), dtype=object)
        answers[:] = distinct
        return list(answers[rows].tolist())

    def coded_answers(self) -> tuple[list[Any], np.ndarray]:
        """A classifier's answers as the distinct ones and each row's index into them: a few classes, each looked up once."""
        answer_of, fallback = self.classes.answer_of, str if self.classes.decoded else _same
        try:
            distinct, rows = np.unique(self.values, return_inverse=True)
        except TypeError:  # values of no one order: one lookup per row
            return [answer_of.get(value, fallback(value)) for value in self.values.tolist()], np.arange(len(self.values))
        return [answer_of.get(value, fallback(value)) for value in distinct.tolist()], rows.reshape(-1)

    def as_json(self) -> list[dict[str, Any]]:
        """The native API's output objects: `prediction`, and `probabilities` keyed by label when the model has them."""
        labels = self.answers()
        if self.probabilities is None:
            return [{"prediction": label} for label in labels]
        return [{"prediction": label, "probabilities": row} for label, row in zip(labels, self._probability_objects(), strict=True)]

    def _probability_objects(self) -> list[dict[str, float]]:
        """One {label: probability} per row; a dict display for two or three classes builds twice as fast as dict(zip)."""
        assert self.probabilities is not None
        names = self.classes.labels
        columns = [self.probabilities[:, index].tolist() for index in range(len(names))]
        if len(names) == 2:
            first, second = names
            return [{first: a, second: b} for a, b in zip(*columns, strict=True)]
        if len(names) == 3:
            first, second, third = names
            return [{first: a, second: b, third: c} for a, b, c in zip(*columns, strict=True)]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    @classmethod
    def concat(cls, parts: Sequence[Predictions]) -> Predictions:
        probabilities = (
            None
            if parts[0].probabilities is None
            else np.concatenate([part.probabilities for part in parts if part.probabilities is not None])
        )
        return cls(parts[0].classes, np.concatenate([part.values for part in parts]), probabilities)


class BundleModel(MLModel):
    """Everything that can be computed once (input adapter, label tables, schemas) is computed at load time.

    `estimator` is what serves: the reference model, or with `compiled` the bundle's compiled form (an ONNX Runtime
    session, fed column arrays). `compiled_skipped` says why the reference serves when the bundle is not ONNX.
    """

    def __init__(self, metadata: BundleMetadata, estimator: Any, *, compiled: bool = False, compiled_skipped: str | None = None) -> None:
        self.metadata = metadata
        self._input_schema = input_model(metadata.name, metadata.features)
        self._output_schema = output_model(metadata.name, metadata.output)
        onnx = compiled or metadata.format is ModelFormat.ONNX
        self.adapter = InputAdapter(metadata.features, metadata.input_shape, columns=onnx)
        self.runtime: Runtime = onnx_runtime(estimator) if onnx else estimator_runtime(estimator, metadata.output.probabilities)
        self.runtime_name = runtime_name(metadata, compiled)
        self.compiled_skipped = None if onnx else compiled_skipped
        self.classes = Classes(metadata)
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
        build = self._output_schema.model_construct
        return [build(**output) for output in self.predict_records(data).as_json()]

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
        return Predictions(self.classes, prediction.values, prediction.probabilities)


def _same(value: Any) -> Any:
    return value
