"""An MLModel backed by a verified bundle: validated records become the model's input, its arrays become outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from sealserve.bundle.inputs import InputAdapter
from sealserve.bundle.metadata import BundleMetadata, ModelFormat
from sealserve.bundle.runtime import Prediction, Runtime, estimator_runtime, onnx_runtime, runtime_name
from sealserve.bundle.schema import input_model, output_model
from sealserve.model import MLModel


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
        self._labels = [item.label for item in metadata.output.classes]
        self._label_of = {item.value: item.label for item in metadata.output.classes}
        self._classification = metadata.output.task == "classification"
        self._with_probabilities = metadata.output.probabilities

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
        return self.outputs(self.runtime(self.adapter.from_records(data)))

    def outputs(self, prediction: Prediction) -> list[BaseModel]:
        build = self._output_schema.model_construct
        if not self._classification:
            return [build(prediction=float(value)) for value in prediction.values.tolist()]
        label_of = self._label_of
        labels = [label_of.get(value, str(value)) for value in prediction.values.tolist()]
        if prediction.probabilities is None or not self._with_probabilities:
            return [build(prediction=label) for label in labels]
        names = self._labels
        return [
            build(prediction=label, probabilities=dict(zip(names, row, strict=True)))
            for label, row in zip(labels, prediction.probabilities.tolist(), strict=True)
        ]
