"""The columnar check accepts only what the schema accepts, and feeds the model exactly what the record path feeds it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from sealserve.bundle.metadata import Feature, FeatureKind, InputShape
from sealserve.bundle.schema import input_records
from sealserve.runtime.columns import ColumnCheck
from sealserve.runtime.inputs import InputAdapter

FEATURES = [
    Feature(name="x", kind=FeatureKind.NUMBER, minimum=0, maximum=10),
    Feature(name="n", kind=FeatureKind.INTEGER, dtype="int64"),
    Feature(name="flag", kind=FeatureKind.BOOLEAN),
    Feature(name="color", kind=FeatureKind.CATEGORY, categories={"RED": 0, "GREEN": 1, "BLUE": 2}),
    Feature(name="city", kind=FeatureKind.CATEGORY, categories={"Paris": "Paris", "Rome": "Rome"}, allow_unknown=True),
    Feature(name="Sepal.Length", kind=FeatureKind.NUMBER),
]
GOOD = {"x": 1.5, "n": 3, "flag": True, "color": "GREEN", "city": "Lyon", "Sepal.Length": 5}
ROWS = 20
UNSET = object()

REFUSED: list[tuple[str, Any]] = [
    ("x", True),
    ("x", "1.5"),
    ("x", None),
    ("x", math.nan),
    ("x", math.inf),
    ("x", -0.5),
    ("x", 10.5),
    ("n", 3.5),
    ("n", 3.0),  # JSON records: an integer feature takes integers only
    ("n", True),
    ("n", "3"),
    ("flag", 1),
    ("flag", "true"),
    ("color", "PURPLE"),
    ("color", 1),
    ("city", 5),
    ("city", "a" * 100_001),
    ("Sepal.Length", None),
    ("x", UNSET),  # missing
    ("extra", 1),  # unknown field
]


def batch(change: tuple[str, Any] | None = None, row: int = ROWS - 1) -> list[Any]:
    records: list[Any] = [dict(GOOD) for _ in range(ROWS)]
    if change is not None:
        field, value = change
        if value is UNSET:
            del records[row][field]
        else:
            records[row][field] = value
    return records


@pytest.fixture(scope="module")
def schema() -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[input_records("demo", FEATURES)])  # type: ignore[misc]


def schema_accepts(schema: TypeAdapter[list[Any]], records: list[Any]) -> bool:
    try:
        schema.validate_python(records)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("change", REFUSED, ids=[f"{field}={str(value)[:12]}" for field, value in REFUSED])
def test_what_the_schema_refuses_the_columnar_check_declines(schema: TypeAdapter[list[Any]], change: tuple[str, Any]) -> None:
    records = batch(change)
    assert not schema_accepts(schema, records)
    assert ColumnCheck(FEATURES).records(records) is None


def test_a_record_that_is_not_an_object_is_declined(schema: TypeAdapter[list[Any]]) -> None:
    records = batch()
    records[3] = [1.5, 3, True, "GREEN", "Lyon", 5]
    assert ColumnCheck(FEATURES).records(records) is None


@pytest.mark.parametrize("shape", [InputShape.FRAME, InputShape.ROWS])
@pytest.mark.parametrize("as_columns", [False, True])
def test_accepted_batches_reach_the_model_exactly_as_validated_records_do(
    schema: TypeAdapter[list[Any]], shape: InputShape, as_columns: bool
) -> None:
    rng = np.random.default_rng(0)
    records = [
        {
            "x": float(rng.uniform(0, 10)) if index % 3 else int(rng.integers(0, 11)),
            "n": int(rng.integers(-(2**40), 2**40)),
            "flag": bool(index % 2),
            "color": ["RED", "GREEN", "BLUE"][index % 3],
            "city": ["Paris", "Rome", "Lyon"][index % 3],
            "Sepal.Length": float(rng.normal()),
        }
        for index in range(ROWS)
    ]
    columns = ColumnCheck(FEATURES).records(records)
    assert columns is not None  # the positive control: a valid batch takes the fast path
    adapter = InputAdapter(FEATURES, shape, columns=as_columns)
    expected = adapter.from_records(schema.validate_python(records))
    answer = adapter.from_columns(columns.arrays)
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(answer, expected)
    elif isinstance(expected, dict):
        assert answer.keys() == expected.keys()
        for name in expected:
            assert answer[name].dtype == expected[name].dtype, name
            assert answer[name].tolist() == expected[name].tolist(), name
    else:
        assert answer.dtype == expected.dtype
        assert answer.tolist() == expected.tolist()


def test_tensor_values_count_whole_floats_as_integers_only_when_asked() -> None:
    check = ColumnCheck([Feature(name="n", kind=FeatureKind.INTEGER, minimum=0)])
    whole = {"n": np.array([1.0, 2.0, 3.0] * 10)}
    assert check(whole, 30) is None
    columns = check(whole, 30, whole_floats=True)
    assert columns is not None
    assert columns.arrays["n"].dtype == np.int64
    assert check({"n": np.array([1.0, 2.5] * 15)}, 30, whole_floats=True) is None
    assert check({"n": np.array([1, -2] * 15)}, 30) is None  # below the declared minimum
    assert check({"n": np.array([2.0**60] * 30)}, 30, whole_floats=True) is None  # past exact floats: the record path decides
