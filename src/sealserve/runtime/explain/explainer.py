"""One served model's explainer: the method chosen once for its reference model, run on validated batches, answered per
input feature the client sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sealserve.bundle.metadata import ModelFormat
from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.columns import Columns
from sealserve.runtime.explain.agnostic import BudgetTooSmall, Plan, permutation_shap, plan
from sealserve.runtime.explain.exact import Method, Unsupported, exact_method
from sealserve.runtime.explain.sources import Sources, client_sources, split_model, to_client, transformed_chunks
from sealserve.runtime.inputs import InputAdapter
from sealserve.runtime.predict import Prediction, Runtime, estimator_runtime

__all__ = ["BudgetTooSmall", "Explained", "Explainer", "NoExplanation"]
NO_TASK_METHOD = "no explanation method for this task"


class NoExplanation(Exception):
    """The model has no method to explain it with (answered 422, naming what is missing)."""


@dataclass(frozen=True)
class Explained:
    """A batch's contributions per client feature [rows, outputs, features], base values [rows, outputs], the output
    they add up to (`output`), the method, the outputs' names, and the client's values [rows][features]."""

    contributions: np.ndarray
    base: np.ndarray
    output: str
    method: str
    outputs: list[Any]
    values: list[list[Any]]
    evaluations: int | None = None
    classes: list[Any] = field(default_factory=list)


class Explainer:
    """Built on a model's first explanation (its reference model is then loaded if the compiled form serves)."""

    def __init__(self, model: BundleModel, max_evaluations: int) -> None:
        self.model, self.max_evaluations = model, max_evaluations
        metadata = model.metadata
        self.names = [feature.name for feature in metadata.features]
        self.task = metadata.output.task
        source = model.explanation
        reference = source.reference() if source is not None and source.reference_files else model.estimator
        onnx_only = metadata.format is ModelFormat.ONNX
        self.adapter = model.adapter if onnx_only else InputAdapter(metadata.features, metadata.input_shape)
        self.runtime: Runtime = model.runtime if onnx_only else estimator_runtime(reference, metadata.output)
        self.exact: Method | None = None
        self.sources: Sources = []
        reason = NO_TASK_METHOD if self.task in ("clustering", "outlier_detection") else "the model's format has no exact method"
        if not onnx_only and reason != NO_TASK_METHOD and not _classified_targets(metadata.output.targets):
            self.split = split_model(reference)
            record = metadata.explanation
            try:
                self.exact = exact_method(self.split.final, record.column_means if record is not None else None)
                self.sources = client_sources(self.split, self.names)
            except Unsupported as exc:
                reason = str(exc)
        self.background = source.background() if self.exact is None and source is not None else None
        if self.exact is None and self.background is None:
            raise NoExplanation(
                f"{reason}; the model-agnostic method needs a background sample, and bundle {metadata.name} {metadata.version} "
                "has none (pack it with --background N)"
            )
        if self.exact is None:
            self._agnostic_output()  # refused now, with its reason, rather than on every request
        answers = metadata.output.answers()
        self.classes = [answers[item.value] for item in metadata.output.classes] if self.task == "classification" else []
        self.outputs_exact = self._exact_outputs()

    def explain(self, batch: Columns | Sequence[Any]) -> Explained:
        values = [list(row) for row in zip(*self.model.client_columns(batch), strict=True)]
        if self.exact is not None:
            model_input = self.adapter.from_columns(batch.arrays) if isinstance(batch, Columns) else self.adapter.from_records(batch)
            parts = [self.exact(chunk) for chunk in transformed_chunks(self.split, model_input)]
            contributions = np.concatenate([to_client(part.contributions, self.sources, len(self.names)) for part in parts])
            base, first = np.concatenate([part.base for part in parts]), parts[0]
            names = self.outputs_exact if len(self.outputs_exact) == base.shape[1] else list(range(base.shape[1]))
            return Explained(contributions, base, first.output, first.method, names, values, classes=self.classes)
        return self._agnostic(values)

    def _agnostic(self, values: list[list[Any]]) -> Explained:
        assert self.background is not None
        chosen: Plan = plan(len(values), len(self.names), len(self.background), self.max_evaluations)
        rows = [dict(zip(self.names, row, strict=True)) for row in values]
        output, names = self._agnostic_output()
        counted = [0]

        def predict(records: list[dict[str, Any]]) -> np.ndarray:
            counted[0] += len(records)
            return _numbers(self.runtime(self.adapter.from_records(records)), output)

        contributions, base = permutation_shap(predict, rows, self.names, self.background, chosen)
        return Explained(contributions, base, output, "permutation", names, values, counted[0], self.classes)

    def _exact_outputs(self) -> list[Any]:
        output = self.model.metadata.output
        if self.task == "classification":
            labels = self.classes
            return labels[1:] if len(labels) == 2 and not _probability_tree(self) else labels
        if self.task == "multi_output":
            return [target.name for target in output.targets]
        return [None]

    def _agnostic_output(self) -> tuple[str, list[Any]]:
        output = self.model.metadata.output
        answers = output.answers()
        if self.task == "outlier_detection":
            return "score", [None]
        if output.probabilities:
            if self.task == "multi_output":
                return "probability", [f"{target.name}={value}" for target in output.targets for value in target.classes]
            return "probability", [answers[item.value] for item in output.classes] or list(range(len(output.classes)))
        if self.task in ("classification", "clustering") or _classified_targets(output.targets):
            raise NoExplanation(f"{NO_TASK_METHOD}: the model answers no probabilities or scores to explain")
        return "value", [target.name for target in output.targets] or [None]


def _numbers(prediction: Prediction, output: str) -> np.ndarray:
    if output == "score":
        assert prediction.scores is not None
        return prediction.scores
    if output == "probability":
        assert prediction.probabilities is not None
        return prediction.probabilities
    return np.asarray(prediction.values, dtype=np.float64)


def _classified_targets(targets: Sequence[Any]) -> bool:
    return any(target.task == "classification" for target in targets)


def _probability_tree(explainer: Explainer) -> bool:
    kind = type(explainer.split.final).__name__ if explainer.exact is not None else ""
    return kind.startswith(("DecisionTree", "ExtraTree", "RandomForest", "ExtraTrees"))
