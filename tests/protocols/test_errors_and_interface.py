"""The shared layer under the adapters: error mapping, positional rows, the interface of a custom model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from sealserve.bundle.metadata import BundleMetadata, Feature, FeatureKind, ModelClass, ModelFormat, OutputSpec
from sealserve.model import MLModelException, MLModelSchemaValidationException
from sealserve.runtime.bundle_model import BundleModel, Predictions
from sealserve.serve.errors import ModelNotReadyError, OverloadedError, ProtocolError, ServingError, UnknownModelError, protocol_error_of
from sealserve.serve.request.interface import Kind, ModelInterface
from tests.support.seed_model import ThresholdRiskModel


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (ProtocolError(400, "bad shape"), 400, "bad shape"),
        (ServingError(413, "payload_too_large", "too big"), 413, "too big"),
        (OverloadedError("queue full"), 503, "queue full"),
        (UnknownModelError("no model named 'x'"), 404, "no model named 'x'"),
        (ModelNotReadyError("not ready"), 503, "not ready"),
        (MLModelSchemaValidationException("bmi too high"), 400, "bmi too high"),
        (MLModelException("/secret/path"), 500, "the model could not make a prediction"),
        (RuntimeError("secret detail"), 500, "internal error"),
        (RequestValidationError([]), 400, "the request does not match the endpoint"),
        (HTTPException(405, "Method Not Allowed"), 405, "Method Not Allowed"),
    ],
)
def test_every_failure_maps_to_one_status_and_a_safe_message(exc: Exception, status: int, message: str) -> None:
    failure = protocol_error_of(exc)
    assert (failure.status, failure.message) == (status, message)
    if status == 503:
        assert failure.headers is not None
        assert failure.headers["Retry-After"] in {"1", "5"}


def test_a_custom_model_interface_comes_from_its_schemas() -> None:
    interface = ModelInterface(ThresholdRiskModel())
    assert [(column.name, column.kind) for column in interface.inputs] == [
        ("body_mass_index", Kind.INTEGER),
        ("general_health", Kind.STRING),
    ]
    assert [(output.name, output.datatype) for output in interface.outputs.values()] == [("risk_score", "FP64"), ("high_risk", "BOOL")]
    assert interface.default_outputs == ("risk_score", "high_risk")
    assert interface.platform == "sealserve_python"
    assert interface.seldon([]) == ([], [], None)


def test_positional_rows_convert_only_losslessly() -> None:
    interface = ModelInterface(ThresholdRiskModel())
    assert interface.records([[30.0, "GOOD"]]) == [{"body_mass_index": 30, "general_health": "GOOD"}]
    assert interface.records([[30.5, "GOOD"]]) == [{"body_mass_index": 30.5, "general_health": "GOOD"}]  # refused by validation
    assert interface.records([["30", "GOOD"]]) == [{"body_mass_index": "30", "general_health": "GOOD"}]
    assert interface.records([["30", "GOOD"]], numeric_strings=True) == [{"body_mass_index": 30, "general_health": "GOOD"}]
    assert interface.records([["GOOD", "30.0"]], ["general_health", "body_mass_index"], numeric_strings=True) == [
        {"general_health": "GOOD", "body_mass_index": 30}
    ]
    with pytest.raises(ProtocolError, match="row 0 has 1 values"):
        interface.records([[30]])
    with pytest.raises(ProtocolError, match="instance 0 is not a list; expected 2 values in the order body_mass_index, general_health"):
        interface.records([{"body_mass_index": 30}], item="instance")
    assert interface.records([{"body_mass_index": 30}], objects=True) == [{"body_mass_index": 30}]


def test_validation_reports_rows_and_fields_without_echoing_input() -> None:
    interface = ModelInterface(ThresholdRiskModel())
    with pytest.raises(ProtocolError) as refused:
        interface.validate([{"body_mass_index": 30, "general_health": "GOOD"}, {"body_mass_index": 99, "general_health": "SECRET-VALUE"}])
    assert refused.value.status == 400
    assert refused.value.message.startswith("row 1, 'body_mass_index': Input should be less than or equal to 60; row 1, 'general_health':")
    assert "SECRET-VALUE" not in refused.value.message


def classifier_interface(classes: dict[Any, str]) -> tuple[BundleModel, ModelInterface]:
    """A bundle classifier's interface from its metadata alone (no estimator runs)."""
    output = OutputSpec(task="classification", classes=[ModelClass(value=value, label=label) for value, label in classes.items()])
    metadata = BundleMetadata(
        name="coded",
        version="1.0.0",
        format=ModelFormat.SKOPS,
        model_file="model.skops",
        created=datetime(2024, 1, 1, tzinfo=UTC),
        library_versions={},
        features=[Feature(name="x", kind=FeatureKind.NUMBER)],
        output=output,
        input_schema={},
        output_schema={},
    )
    model = BundleModel(metadata, estimator=None)
    return model, ModelInterface(model)


@pytest.mark.parametrize(
    ("classes", "values", "expected"),
    [
        ({0: "<=50K", 1: ">50K"}, [1, 0], [">50K", "<=50K"]),  # declared labels: decoded (issue 9)
        ({0: "0", 1: "1"}, [1, 0], [1, 0]),  # packed without labels: the typed class values, as KServe's sklearn server
        ({False: "False", True: "True"}, [True, False], [True, False]),
        ({"<=50K": "<=50K", ">50K": ">50K"}, [">50K"], [">50K"]),  # string classes are their own labels
    ],
    ids=["declared", "undeclared", "booleans", "strings"],
)
def test_one_value_per_row_is_the_declared_label_else_the_class_value(
    classes: dict[Any, str], values: list[Any], expected: list[Any]
) -> None:
    model, interface = classifier_interface(classes)
    answer = Predictions(model.classes, np.array(values), None)
    assert interface.predictions(answer) == expected
    assert [type(value) for value in interface.predictions(answer)] == [type(value) for value in expected]
    assert interface.outputs["predict"].extract(answer) == values  # V2 `predict` keeps the class values
