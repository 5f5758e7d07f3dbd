"""What a fitted multi-output model, clusterer or outlier detector should answer on every protocol, computed from the
estimator itself (never from sealserve), and a comparison that keeps JSON types (1 is not 1.0, true is not 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import is_classifier

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Expected:
    """Per protocol: native output objects, V1 predictions, V2 default outputs (datatype, shape, flat data), Seldon."""

    native: list[dict[str, Any]]
    v1: list[Any]
    v2: dict[str, tuple[str, list[int], list[Any]]]
    seldon: tuple[list[str], list[Any]]


def expected_answers(estimator: Any, task: str, targets: list[str], rows: Any) -> Expected:
    count = len(rows)
    if task == "multi_output":
        values = target_rows(estimator, rows)
        flat = [value for row in values for value in row]
        datatype = "FP64" if all(isinstance(value, float) for value in flat) else "INT64"
        chances = target_chances(estimator, targets, rows)
        native = [{"prediction": dict(zip(targets, row, strict=True))} for row in values]
        for answer, row in zip(native, chances or [], strict=False):
            answer["probabilities"] = row
        return Expected(
            native,
            values,
            {"predict": (datatype, [count, len(targets)], flat)},
            (targets, values),
        )
    ids = np.asarray(estimator.predict(rows)).tolist()
    if task == "clustering":
        if not hasattr(estimator, "predict_proba"):
            return Expected([{"prediction": value} for value in ids], ids, {"predict": ("INT64", [count], ids)}, ([], ids))
        chances = np.asarray(estimator.predict_proba(rows)).tolist()
        names = [str(index) for index in range(len(chances[0]))]
        return Expected(
            [{"prediction": value, "probabilities": dict(zip(names, row, strict=True))} for value, row in zip(ids, chances, strict=True)],
            ids,
            {"predict": ("INT64", [count], ids)},
            (names, chances),
        )
    method = estimator.score_samples if hasattr(estimator, "score_samples") else estimator.decision_function
    scores = np.asarray(method(rows), dtype=np.float64).tolist()
    flags = [value == -1 for value in ids]
    native = [{"is_outlier": flag, "score": score} for flag, score in zip(flags, scores, strict=True)]
    return Expected(
        native,
        native,
        {"is_outlier": ("BOOL", [count], flags), "score": ("FP64", [count], scores)},
        (["is_outlier", "score"], [[flag, score] for flag, score in zip(flags, scores, strict=True)]),
    )


def target_chances(estimator: Any, targets: list[str], rows: Any) -> list[dict[str, dict[str, float]]] | None:
    """Each classification target's probabilities keyed by class text, from `predict_proba`: one array per target, or
    each binary target's probability of its second class (a chain, a multilabel model); None for regressors."""
    if not is_classifier(estimator) or not hasattr(estimator, "predict_proba"):
        return None
    classes = getattr(estimator, "classes_", None)
    keys = [[str(value) for value in np.asarray(target).tolist()] for target in classes] if isinstance(classes, list) else None
    raw = estimator.predict_proba(rows)
    if isinstance(raw, list):
        tables = [np.asarray(array, dtype=np.float64).tolist() for array in raw]
    else:
        positive = np.asarray(raw, dtype=np.float64)
        tables = [np.column_stack([1.0 - positive[:, index], positive[:, index]]).tolist() for index in range(len(targets))]
    keys = keys or [["0", "1"]] * len(targets)
    return [
        {target: dict(zip(keys[index], tables[index][row], strict=True)) for index, target in enumerate(targets)}
        for row in range(len(rows))
    ]


def target_rows(estimator: Any, rows: Any) -> list[list[Any]]:
    """`predict` per row; a classification target's value as the class it is (ClassifierChain predicts 1.0 for class 1)."""
    values = np.asarray(estimator.predict(rows)).tolist()
    classes = getattr(estimator, "classes_", None)
    if is_classifier(estimator) and not isinstance(classes, list):  # multilabel: a 0/1 indicator per label
        return [[int(value) for value in row] for row in values]
    if not isinstance(classes, list):
        return [[float(value) for value in row] for row in values]
    tables = [{value: value for value in np.asarray(target).tolist()} for target in classes]
    return [[table[value] for table, value in zip(tables, row, strict=True)] for row in values]


def same(served: Any, expected: Any, where: str) -> None:
    """Equal with the same JSON types; floats within TOLERANCE."""
    if isinstance(expected, dict):
        assert isinstance(served, dict), f"{where}: {served!r} != {expected!r}"
        assert list(served) == list(expected), f"{where}: {served!r} != {expected!r}"
        for key in expected:
            same(served[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(served, list | tuple), f"{where}: {served!r} != {expected!r}"
        assert len(served) == len(expected), f"{where}: {len(served)} values != {len(expected)}"
        for index, (left, right) in enumerate(zip(served, expected, strict=True)):
            same(left, right, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert type(served) is float, f"{where}: {served!r} is not a float"
        assert math.isclose(served, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE), f"{where}: {served} != {expected}"
    else:
        assert (type(served), served) == (type(expected), expected), f"{where}: {served!r} != {expected!r}"
