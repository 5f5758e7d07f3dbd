"""Schemas derived from a DataFrame: names, kinds, ranges, categories; requests are validated strictly."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ValidationError

from sealserve.bundle.metadata import Feature, FeatureKind, ModelClass, OutputSpec
from sealserve.bundle.schema import derive_features, feature_statistics, input_model, output_model
from tests.conftest import FEATURE_OVERRIDES, GENERAL_HEALTH


@pytest.fixture(scope="module")
def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 45, 60, 22],
            "bmi": [21.5, 30.0, np.nan, 40.25],
            "smoker": [True, False, False, True],
            "region": ["north", "south", "north", None],
        }
    )


@pytest.fixture(scope="module")
def risk_input(training_frame: pd.DataFrame) -> type[BaseModel]:
    return input_model("risk", derive_features(training_frame, FEATURE_OVERRIDES))


def test_names_kinds_dtypes_and_nullability_come_from_the_data_in_column_order(mixed_frame: pd.DataFrame) -> None:
    features = derive_features(mixed_frame)
    assert [(f.name, f.kind, f.dtype, f.nullable) for f in features] == [
        ("age", FeatureKind.NUMBER, "int64", False),
        ("bmi", FeatureKind.NUMBER, "float64", True),
        ("smoker", FeatureKind.BOOLEAN, "bool", False),
        ("region", FeatureKind.CATEGORY, "object", True),
    ]
    assert all((f.minimum, f.maximum) == (None, None) for f in features)  # observed ranges are statistics, not bounds
    assert features[3].categories == {"north": "north", "south": "south"}


def test_observed_ranges_are_statistics_and_missing_values_do_not_poison_them(mixed_frame: pd.DataFrame) -> None:
    statistics = feature_statistics(mixed_frame, derive_features(mixed_frame))
    assert (statistics["age"].minimum, statistics["age"].maximum) == (22.0, 60.0)
    assert (statistics["bmi"].minimum, statistics["bmi"].maximum) == (21.5, 40.25)


def test_values_outside_the_training_range_and_fractions_on_integer_columns_are_accepted(mixed_frame: pd.DataFrame) -> None:
    model = input_model("people", derive_features(mixed_frame))
    record = model.model_validate({"age": 82, "bmi": 148.5, "smoker": False, "region": "north"})
    assert record.age == 82  # type: ignore[attr-defined]
    assert model.model_validate({"age": 60.5, "smoker": True}).bmi is None  # type: ignore[attr-defined]


def test_nullable_features_take_null_or_absence_and_others_still_require_a_value(mixed_frame: pd.DataFrame) -> None:
    model = input_model("people", derive_features(mixed_frame))
    record = model.model_validate_json('{"age": 30, "bmi": null, "smoker": true}')
    assert (record.bmi, record.region) == (None, None)  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="age"):
        model.model_validate_json('{"bmi": 20.0, "smoker": true}')


def test_declared_bounds_and_integer_kind_are_enforced(mixed_frame: pd.DataFrame) -> None:
    model = input_model("people", derive_features(mixed_frame, {"age": {"kind": "integer", "minimum": 0, "maximum": 120}}))
    with pytest.raises(ValidationError, match="less than or equal to 120"):
        model.model_validate({"age": 130, "smoker": True})
    with pytest.raises(ValidationError, match="valid integer"):
        model.model_validate({"age": 30.5, "smoker": True})


def test_open_categories_take_labels_the_sample_did_not_have(mixed_frame: pd.DataFrame) -> None:
    closed = input_model("people", derive_features(mixed_frame))
    with pytest.raises(ValidationError, match="region"):
        closed.model_validate({"age": 30, "smoker": True, "region": "east"})
    opened = input_model("people", derive_features(mixed_frame, {"region": {"allow_unknown": True}}))
    assert opened.model_validate({"age": 30, "smoker": True, "region": "east"}).region == "east"  # type: ignore[attr-defined]


def test_overrides_give_readable_category_labels_for_coded_columns(training_frame: pd.DataFrame) -> None:
    features = {f.name: f for f in derive_features(training_frame, FEATURE_OVERRIDES)}
    health = features["general_health"]
    assert health.kind is FeatureKind.CATEGORY
    assert health.categories is not None
    assert health.categories["VERY_GOOD"] == 2.0
    assert (health.minimum, health.maximum) == (None, None)
    assert health.description == "Self-reported general health."
    assert features["bmi"].description == "Body mass index."


def test_overrides_for_unknown_columns_or_keys_are_refused_with_the_name(training_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"not in the sample: \['weight'\]"):
        derive_features(training_frame, {"weight": {"description": "kg"}})
    with pytest.raises(ValueError, match="feature 'bmi': descripton: Extra inputs are not permitted"):
        derive_features(training_frame, {"bmi": {"descripton": "typo"}})
    with pytest.raises(ValueError, match="feature 'age': kind: Input should be"):
        derive_features(training_frame, {"age": {"kind": "timestamp"}})


def test_input_schema_lists_fields_in_feature_order_with_declared_ranges_and_labels(risk_input: type[BaseModel]) -> None:
    schema = risk_input.model_json_schema()
    assert list(schema["properties"]) == ["age", "bmi", "general_health"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["general_health"]["enum"] == list(GENERAL_HEALTH)
    assert schema["properties"]["age"]["type"] == "integer"
    assert (schema["properties"]["bmi"]["minimum"], schema["properties"]["bmi"]["maximum"]) == (10.0, 80.0)
    json.dumps(schema)  # the schema must be plain JSON (no NaN/Infinity bounds)


def valid_record(**changes: Any) -> dict[str, Any]:
    return {"age": 50, "bmi": 30.0, "general_health": "VERY_GOOD", **changes}


def test_a_valid_record_is_accepted(risk_input: type[BaseModel]) -> None:
    record = risk_input.model_validate_json(json.dumps(valid_record()))
    assert record.general_health == "VERY_GOOD"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "field", "error_type"),
    [
        ('{"age": 50, "bmi": NaN, "general_health": "GOOD"}', "bmi", "finite_number"),
        ('{"age": 50, "bmi": Infinity, "general_health": "GOOD"}', "bmi", "finite_number"),
        ('{"age": 50, "bmi": -Infinity, "general_health": "GOOD"}', "bmi", "finite_number"),
        ('{"age": 50, "bmi": "30", "general_health": "GOOD"}', "bmi", "float_type"),
        ('{"age": 50.5, "bmi": 30.0, "general_health": "GOOD"}', "age", "int_type"),
        ('{"age": 50, "bmi": 99.0, "general_health": "GOOD"}', "bmi", "less_than_equal"),
        ('{"age": 50, "bmi": 30.0, "general_health": 2.0}', "general_health", "literal_error"),
        ('{"age": 50, "bmi": 30.0, "general_health": "very good"}', "general_health", "literal_error"),
        ('{"age": 50, "bmi": 30.0}', "general_health", "missing"),
        ('{"age": 50, "bmi": 30.0, "general_health": "GOOD", "admin": true}', "admin", "extra_forbidden"),
    ],
)
def test_invalid_records_are_refused_naming_the_field(risk_input: type[BaseModel], body: str, field: str, error_type: str) -> None:
    with pytest.raises(ValidationError) as raised:
        risk_input.model_validate_json(body)
    [error] = raised.value.errors()
    assert (error["loc"], error["type"]) == ((field,), error_type)


def test_nan_and_infinity_are_refused_from_python_values_too(risk_input: type[BaseModel]) -> None:
    for value in (math.nan, math.inf):
        with pytest.raises(ValidationError, match="finite"):
            risk_input.model_validate(valid_record(bmi=value))


def test_booleans_are_strict() -> None:
    model = input_model("flags", [Feature(name="smoker", kind=FeatureKind.BOOLEAN)])
    assert model.model_validate_json('{"smoker": true}').smoker is True  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        model.model_validate_json('{"smoker": 1}')


def test_output_schema_for_a_classifier_lists_the_labels() -> None:
    spec = OutputSpec(
        task="classification", classes=[ModelClass(value=0, label="low"), ModelClass(value=1, label="high")], probabilities=True
    )
    schema = output_model("risk", spec).model_json_schema()
    assert schema["properties"]["prediction"]["enum"] == ["low", "high"]
    assert "probabilities" in schema["properties"]
    regression = output_model("price", OutputSpec(task="regression")).model_json_schema()
    assert regression["properties"]["prediction"]["type"] == "number"


def test_training_statistics_describe_each_feature_for_drift(training_frame: pd.DataFrame) -> None:
    features = derive_features(training_frame, FEATURE_OVERRIDES)
    statistics = feature_statistics(training_frame, features)
    bmi = statistics["bmi"]
    assert bmi.count == len(training_frame)
    assert bmi.mean == pytest.approx(training_frame["bmi"].mean())
    assert bmi.bin_edges is not None
    assert bmi.bin_counts is not None
    assert sum(bmi.bin_counts) == len(training_frame)
    assert len(bmi.bin_edges) == len(bmi.bin_counts) + 1
    health = statistics["general_health"]
    assert health.frequencies is not None
    assert set(health.frequencies) <= set(GENERAL_HEALTH)  # counted under the readable labels, not the codes
    assert sum(health.frequencies.values()) == len(training_frame)
    assert health.frequencies["VERY_GOOD"] == int((training_frame["general_health"] == 2.0).sum())


def test_feature_names_python_cannot_use_travel_by_alias_and_reach_the_model_in_order() -> None:
    from sealserve.bundle.metadata import InputShape
    from sealserve.runtime.inputs import InputAdapter

    frame = pd.DataFrame({"Sepal.Length": [5.1, 4.9], "_id": [1.0, 2.0], "model_config": [0.5, 0.7], "class": [3.0, 4.0]})
    features = derive_features(frame)
    model = input_model("odd", features)
    record = model.model_validate({"Sepal.Length": 6.0, "_id": 7.0, "model_config": 1.5, "class": 2.0})
    assert list(model.model_json_schema()["properties"]) == list(frame.columns)
    assert InputAdapter(features, InputShape.ROWS).from_records([record]).tolist() == [[6.0, 7.0, 1.5, 2.0]]


def test_a_single_nullable_feature_reaches_the_model_whole_from_a_record_or_a_batch_dict() -> None:
    from sealserve.bundle.metadata import InputShape
    from sealserve.bundle.schema import text_feature
    from sealserve.runtime.inputs import InputAdapter

    features = text_feature(pd.DataFrame({"review": ["good", None, "bad"]}))
    adapter = InputAdapter(features, InputShape.TEXT)
    record = input_model("reviews", features).model_validate({"review": "great film"})
    assert adapter.from_records([record, {"review": "dull"}, {}]) == ["great film", "dull", ""]
