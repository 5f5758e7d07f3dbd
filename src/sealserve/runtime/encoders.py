"""Each protocol's answer shape, built once per model from its output spec: the native API's objects, one value per row
(KServe V1), named V2 tensors (REST and gRPC) and Seldon's names and values.

The protocol adapters answer through these encoders, and pack and the trial prediction run them on real predictions
(`check_answers`), so an answer the server could not give fails before the bundle serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealserve.bundle.metadata import CategoryCode, OutputSpec, Target
from sealserve.runtime.answers import Predictions

Extract = Callable[[Any], list[Any]]  # the run's outputs (`Predictions` for bundles) → flat values
SeldonAnswer = tuple[list[str], list[Any], int | None]  # column names, flat values, values per row (None: one)


@dataclass(frozen=True)
class Output:
    """One named V2 output: its datatype, values per row (None: one), and how to read it from predictions."""

    name: str
    datatype: str
    width: int | None
    extract: Extract
    array: Callable[[Any], np.ndarray | None] | None = None  # the same values as one array, when the run holds them so

    def shape(self, rows: int) -> list[int]:
        return [rows] if self.width is None else [rows, self.width]

    def binary(self, predictions: Any) -> np.ndarray | list[Any]:
        """The values for a binary encoding: the run's array when its kind casts exactly to the datatype, else `extract`'s
        list (a 10,000-row answer then costs no Python value per row)."""
        array = self.array(predictions) if self.array is not None else None
        if array is not None and array.dtype.kind in EXACT_KINDS.get(self.datatype, ""):
            return array
        return self.extract(predictions)


SAME_LIST_KINDS = {"INT64": "iu", "BOOL": "b"}  # numpy kinds whose `tolist()` are already the declared class values
EXACT_KINDS = {"INT64": "iub", "FP64": "fiub", "BOOL": "b"}  # numpy kinds whose values cast to the datatype unchanged


@dataclass(frozen=True)
class Encoders:
    """A bundle model's answer on every protocol; `default_outputs` are the V2 outputs sent when none are requested."""

    native: Callable[[Predictions], list[dict[str, Any]]]
    per_row: Callable[[Predictions], list[Any]]
    outputs: tuple[Output, ...]
    default_outputs: tuple[str, ...]
    seldon: Callable[[Predictions], SeldonAnswer]


def encoders_for(output: OutputSpec) -> Encoders:
    return TASK_ENCODERS[output.task](output)


def datatype_of_values(values: Sequence[Any]) -> str:
    """The V2 datatype holding every one of these class values without a change of type."""
    if values and all(isinstance(value, bool) for value in values):
        return "BOOL"
    if all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return "INT64"
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
        return "FP64"
    return "BYTES"


def _regression(output: OutputSpec) -> Encoders:
    def numbers(predictions: Predictions) -> list[Any]:
        return list(predictions.values.astype(np.float64).tolist())

    return Encoders(
        native=lambda predictions: [{"prediction": value} for value in numbers(predictions)],
        per_row=numbers,
        outputs=(Output("predict", "FP64", None, numbers, _values),),
        default_outputs=("predict",),
        seldon=lambda predictions: ([], numbers(predictions), None),
    )


FEW_ROWS = 16  # up to this many rows, answers are looked up row by row


def _classification(output: OutputSpec) -> Encoders:
    """The class is its label when the bundle declares readable labels, else the class value keeping its JSON type;
    V2 `predict` keeps the class values (as KServe's sklearn server), `label` the labels."""
    values = [item.value for item in output.classes]
    labels = [item.label for item in output.classes]
    label_of = {item.value: item.label for item in output.classes}
    answer_of, fallback = output.answers(), str if output.decoded else _same
    datatype = datatype_of_values(values)
    declared: dict[Any, Any] = {value: str(value) if datatype == "BYTES" else value for value in values}

    def answers(predictions: Predictions) -> list[Any]:
        """Each distinct class looked up once (np.unique), then spread over the rows: a 10,000-row batch has a few classes.
        A few rows are looked up one by one: np.unique's sort costs a single-record request more than the lookups."""
        if predictions.values.size <= FEW_ROWS:
            return [answer_of.get(value, fallback(value)) for value in predictions.values.ravel().tolist()]
        try:
            distinct, rows = np.unique(predictions.values, return_inverse=True)
        except TypeError:  # class values of no one order
            return [answer_of.get(value, fallback(value)) for value in predictions.values.tolist()]
        looked_up = np.empty(len(distinct), dtype=object)
        looked_up[:] = [answer_of.get(value, fallback(value)) for value in distinct.tolist()]
        return list(looked_up[rows.reshape(-1)].tolist())

    def native(predictions: Predictions) -> list[dict[str, Any]]:
        return _with_probabilities(answers(predictions), labels, predictions)

    def predict(predictions: Predictions) -> list[Any]:
        values = predictions.values
        if values.dtype.kind in SAME_LIST_KINDS.get(datatype, ""):  # integer or boolean classes: each value is its own answer
            return list(values.tolist())
        return [declared.get(value, value) for value in values.tolist()]

    def label(predictions: Predictions) -> list[Any]:
        return [label_of.get(value, str(value)) for value in predictions.values.tolist()]

    outputs = [Output("predict", datatype, None, predict, _values), Output("label", "BYTES", None, label)]
    if output.probabilities:
        outputs.append(Output("predict_proba", "FP64", len(labels), _probabilities, _probability_array))

    def seldon(predictions: Predictions) -> SeldonAnswer:
        return _seldon_with_probabilities(answers, labels, predictions)

    return Encoders(native, answers, tuple(outputs), ("predict",), seldon)


def _multi_output(output: OutputSpec) -> Encoders:
    """A row of target values: an object keyed by target (native), a list (V1), `predict` [rows, targets] and one [rows]
    output per target (V2), the targets as Seldon's names."""
    targets = output.targets
    names = [target.name for target in targets]
    converters = [_target_value(target) for target in targets]
    datatypes = [_target_datatype(target) for target in targets]
    datatype = datatypes[0] if len(set(datatypes)) == 1 else "BYTES"
    width = len(targets)

    def rows(predictions: Predictions) -> list[list[Any]]:
        return [[convert(value) for convert, value in zip(converters, row, strict=True)] for row in predictions.values.tolist()]

    def flat(predictions: Predictions) -> list[Any]:
        values = [value for row in rows(predictions) for value in row]
        return [_text(value) for value in values] if datatype == "BYTES" else values

    def column(index: int, text: bool) -> Extract:
        def extract(predictions: Predictions) -> list[Any]:
            values = [row[index] for row in rows(predictions)]
            return [_text(value) for value in values] if text else values

        return extract

    per_target = [
        Output(name, kind, None, column(index, kind == "BYTES"))
        for index, (name, kind) in enumerate(zip(names, datatypes, strict=True))
        if name != "predict"
    ]
    chances = _target_chances(output) if output.probabilities else None

    def native(predictions: Predictions) -> list[dict[str, Any]]:
        answers = [{"prediction": dict(zip(names, row, strict=True))} for row in rows(predictions)]
        if chances is not None and predictions.probabilities is not None:
            for answer, row in zip(answers, chances.per_row(predictions.probabilities), strict=True):
                answer["probabilities"] = row
        return answers

    return Encoders(
        native=native,
        per_row=rows,
        outputs=(Output("predict", datatype, width, flat), *per_target, *(chances.outputs() if chances else ())),
        default_outputs=("predict",),
        seldon=lambda predictions: (list(names), [value for row in rows(predictions) for value in row], width),
    )


@dataclass(frozen=True)
class _TargetChances:
    """Where each classification target's probability columns sit in a multi-output batch's probabilities."""

    names: list[str]
    labels: list[list[str]]
    starts: list[int]

    def per_row(self, probabilities: np.ndarray) -> list[dict[str, dict[str, float]]]:
        rows = probabilities.tolist()
        spans = [
            (name, labels, start, start + len(labels)) for name, labels, start in zip(self.names, self.labels, self.starts, strict=True)
        ]
        return [{name: dict(zip(labels, row[start:end], strict=True)) for name, labels, start, end in spans} for row in rows]

    def outputs(self) -> list[Output]:
        """`predict_proba_<target>` [rows, classes] per target, sent when requested (as a classifier's `predict_proba`)."""

        def columns(start: int, end: int) -> Extract:
            return lambda predictions: list(np.asarray(predictions.probabilities)[:, start:end].ravel().tolist())

        return [
            Output(f"{PROBABILITY_OUTPUT}{name}", "FP64", len(labels), columns(start, start + len(labels)))
            for name, labels, start in zip(self.names, self.labels, self.starts, strict=True)
        ]


PROBABILITY_OUTPUT = "predict_proba_"


def _target_chances(output: OutputSpec) -> _TargetChances:
    labels = [[str(value) for value in target.classes] for target in output.targets]
    starts = [sum(len(previous) for previous in labels[:index]) for index in range(len(labels))]
    return _TargetChances([target.name for target in output.targets], labels, starts)


def _clustering(output: OutputSpec) -> Encoders:
    """The cluster id, and with `probabilities` each cluster's probability keyed by its id (as a classifier's)."""
    labels = [item.label for item in output.classes]

    def ids(predictions: Predictions) -> list[Any]:
        return list(predictions.values.astype(np.int64).tolist())

    def native(predictions: Predictions) -> list[dict[str, Any]]:
        return _with_probabilities(ids(predictions), labels, predictions)

    outputs = [Output("predict", "INT64", None, ids)]
    if output.probabilities:
        outputs.append(Output("predict_proba", "FP64", len(labels), _probabilities))

    def seldon(predictions: Predictions) -> SeldonAnswer:
        return _seldon_with_probabilities(ids, labels, predictions)

    return Encoders(native, ids, tuple(outputs), ("predict",), seldon)


def _outlier_detection(output: OutputSpec) -> Encoders:
    """`is_outlier` (predict() == -1) and the detector's `score` (higher: more normal), named on every protocol."""

    def flags(predictions: Predictions) -> list[Any]:
        return list((predictions.values == -1).tolist())

    def scores(predictions: Predictions) -> list[Any]:
        if predictions.scores is None:
            raise ValueError("the outlier detector answered no scores")
        return list(predictions.scores.astype(np.float64).tolist())

    def native(predictions: Predictions) -> list[dict[str, Any]]:
        return [{"is_outlier": flag, "score": score} for flag, score in zip(flags(predictions), scores(predictions), strict=True)]

    def seldon(predictions: Predictions) -> SeldonAnswer:
        pairs = zip(flags(predictions), scores(predictions), strict=True)
        return ["is_outlier", "score"], [value for pair in pairs for value in pair], 2

    outputs = (Output("is_outlier", "BOOL", None, flags), Output("score", "FP64", None, scores))
    return Encoders(native, native, outputs, ("is_outlier", "score"), seldon)


def _with_probabilities(values: list[Any], labels: list[str], predictions: Predictions) -> list[dict[str, Any]]:
    """Native objects: `prediction`, and `probabilities` keyed by label when the batch has them (built from per-class
    columns; a dict display for two or three classes builds about twice as fast as dict(zip) per row)."""
    probabilities = predictions.probabilities
    if probabilities is None:
        return [{"prediction": value} for value in values]
    if len(values) == 1 and probabilities.shape == (1, len(labels)):  # a single record: one row, no columns to build
        return [{"prediction": values[0], "probabilities": dict(zip(labels, probabilities[0].tolist(), strict=True))}]
    columns = [probabilities[:, index].tolist() for index in range(len(labels))]
    if len(labels) == 2:
        first, second = labels
        chances = [{first: a, second: b} for a, b in zip(*columns, strict=True)]
    elif len(labels) == 3:
        first, second, third = labels
        chances = [{first: a, second: b, third: c} for a, b, c in zip(*columns, strict=True)]
    else:
        chances = [dict(zip(labels, row, strict=True)) for row in zip(*columns, strict=True)]
    return [{"prediction": value, "probabilities": row} for value, row in zip(values, chances, strict=True)]


def _seldon_with_probabilities(values: Extract, labels: list[str], predictions: Predictions) -> SeldonAnswer:
    """The probabilities named by label (as Seldon's sklearn server answers), else one value per row."""
    if predictions.probabilities is None:
        return [], values(predictions), None
    return list(labels), _probabilities(predictions), len(labels)


def _values(predictions: Predictions) -> np.ndarray | None:
    """The predicted values of one value per row, as the run answered them."""
    values = predictions.values
    return values if values.ndim == 1 else None


def _probability_array(predictions: Predictions) -> np.ndarray | None:
    return None if predictions.probabilities is None else predictions.probabilities.ravel()


def _probabilities(predictions: Predictions) -> list[Any]:
    if predictions.probabilities is None:
        raise ValueError("the model answered no probabilities")
    return list(predictions.probabilities.ravel().tolist())


def _target_value(target: Target) -> Callable[[Any], Any]:
    """A regression target answers a float; a classification target its class value with the class's own JSON type."""
    if target.task == "regression":
        return float
    classes: dict[Any, CategoryCode] = {value: value for value in target.classes}
    return lambda value: classes.get(value, value)


def _target_datatype(target: Target) -> str:
    return "FP64" if target.task == "regression" else datatype_of_values(target.classes)


def _text(value: Any) -> Any:
    return value if isinstance(value, str) else str(value)


def _same(value: Any) -> Any:
    return value


TASK_ENCODERS: dict[str, Callable[[OutputSpec], Encoders]] = {
    "regression": _regression,
    "classification": _classification,
    "multi_output": _multi_output,
    "clustering": _clustering,
    "outlier_detection": _outlier_detection,
}
