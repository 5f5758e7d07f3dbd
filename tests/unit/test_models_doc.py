"""docs/models.md's output table cannot drift: every scikit-learn estimator a row names is detected as that row's task
by pack, and the V2 outputs the row lists are the ones the server's encoders answer."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.utils import all_estimators

from sealserve.bundle.metadata import OutputSpec
from sealserve.packing.outputs import has_method, output_spec
from sealserve.runtime.encoders import encoders_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
OUTPUT_NAMES = {"predict", "label", "predict_proba", "is_outlier", "score"}


def table_rows() -> list[list[str]]:
    lines = DOC.read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("| estimator family | task |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


ROWS = table_rows()
ESTIMATORS = dict(all_estimators())


def fitted(name: str, row: list[str]) -> tuple[Any, np.ndarray]:
    """The named estimator, fitted the way the row describes (a 2-D y for multi-output rows)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    call = re.match(r"(\w+)(\((.*)\))?$", name)
    assert call is not None, name
    options = {"novelty": True} if call.group(3) == "novelty=True" else {}
    cls = ESTIMATORS[call.group(1)]
    task, family = row[1].strip("`"), row[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if call.group(1) in ("MultiOutputRegressor", "RegressorChain", "MultiOutputClassifier", "ClassifierChain"):
            from sklearn.linear_model import LogisticRegression, Ridge

            estimator = cls(LogisticRegression() if "Classifier" in call.group(1) else Ridge(), **options)
        else:
            estimator = cls(**options)
        if task == "multi_output":
            y = (X[:, :2] > 0).astype(int) if "classifier" in family else X[:, :2] * 2
            return estimator.fit(X, y), X
        if task == "classification":
            return estimator.fit(X, (X[:, 0] > 0).astype(int)), X
        if task == "regression":
            return estimator.fit(X, X[:, 0]), X
        return estimator.fit(X), X


CASES = [
    (name.strip("`"), row) for row in ROWS for name in re.findall(r"`(\w+(?:\([^`]*\))?)`", row[0]) if name.split("(")[0] in ESTIMATORS
]


def test_the_table_names_each_task_and_enough_estimators() -> None:
    assert sorted({row[1].strip("`") for row in ROWS}) == [
        "classification",
        "clustering",
        "multi_output",
        "outlier_detection",
        "regression",
    ]
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "row"), CASES, ids=[f"{name}-{row[1].strip('`')}" for name, row in CASES])
def test_pack_detects_the_task_the_table_names(name: str, row: list[str]) -> None:
    estimator, X = fitted(name, row)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = output_spec(estimator, None, None, [], X)
    assert spec.task == row[1].strip("`")
    listed = set(re.findall(r"`(\w+)`", row[4])) & OUTPUT_NAMES
    if not has_method(estimator, "predict_proba"):  # the table's `predict_proba` is for models that have it
        listed.discard("predict_proba")
    answered = {output.name for output in encoders_for(spec).outputs} & OUTPUT_NAMES
    assert answered == listed, f"{name}: the table lists V2 outputs {sorted(listed)}, the encoders answer {sorted(answered)}"


def test_every_task_has_encoders() -> None:
    for task in ("classification", "regression", "clustering"):
        assert encoders_for(OutputSpec(task=task)).default_outputs == ("predict",)
