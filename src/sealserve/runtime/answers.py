"""A batch's answer as arrays, with the label tables of its model: what every protocol's encoder reads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sealserve.bundle.metadata import BundleMetadata
from sealserve.runtime.predict import Prediction


class Classes:
    """A model's label tables, built once per model: class value → label, and labels in probability-column order
    (a clusterer's probability columns are its cluster ids)."""

    def __init__(self, metadata: BundleMetadata) -> None:
        output = metadata.output
        self.task = output.task
        self.labels = [item.label for item in output.classes]
        self.label_of = {item.value: item.label for item in output.classes}
        self.answer_of = output.answers()
        self.decoded = output.decoded
        self.classification = output.task == "classification"
        self.with_probabilities = output.task in ("classification", "clustering", "multi_output") and output.probabilities
        self.targets = output.targets


class Predictions:
    """A batch's answer kept as arrays (values, probabilities, scores); encoders turn it into each protocol's shape.

    Slicing gives each caller of a shared batch its own rows.
    """

    def __init__(self, classes: Classes, values: np.ndarray, probabilities: np.ndarray | None, scores: np.ndarray | None = None) -> None:
        self.classes, self.values, self.scores = classes, values, scores
        self.probabilities = probabilities if classes.with_probabilities else None

    @classmethod
    def of(cls, classes: Classes, prediction: Prediction) -> Predictions:
        return cls(classes, prediction.values, prediction.probabilities, prediction.scores)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: slice) -> Predictions:
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        scores = None if self.scores is None else self.scores[rows]
        return Predictions(self.classes, self.values[rows], probabilities, scores)

    @classmethod
    def concat(cls, parts: Sequence[Predictions]) -> Predictions:
        probabilities = _joined([part.probabilities for part in parts])
        scores = _joined([part.scores for part in parts])
        return cls(parts[0].classes, np.concatenate([part.values for part in parts]), probabilities, scores)


def _joined(arrays: Sequence[np.ndarray | None]) -> np.ndarray | None:
    present = [array for array in arrays if array is not None]
    return np.concatenate(present) if present and len(present) == len(arrays) else None
