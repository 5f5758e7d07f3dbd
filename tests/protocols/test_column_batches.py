"""The native batch route's column shapes (MLflow's `dataframe_split` and `inputs`, Arrow IPC streams) against a real
server: the same answers as a records batch of the same rows, and the same refusals, naming the column and the row."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from sklearn.linear_model import LinearRegression

import sealserve
from tests.protocols.conftest import ROOT
from tests.support.bundles import FEATURE_OVERRIDES, Workspace, training_data
from tests.support.server import RunningServer, serve
from tests.support.zoo import Record, ZooModel, census, imputed

ARROW = "application/vnd.apache.arrow.stream"
MAX_BATCH = 60
ROWS = 40  # past COLUMNAR_ROWS: the vectorised path


@dataclass(frozen=True)
class Server:
    running: RunningServer
    models: dict[str, ZooModel]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("columns")
    space = Workspace.create(root)
    (root / "bundles").mkdir()
    space.publish("demo", "1.0.0")
    models = {model.name: model for model in (census(np.random.default_rng(1)), imputed(np.random.default_rng(2)))}
    for model in models.values():
        bundle = sealserve.pack(
            model.estimator,
            name=model.name,
            version="1.0.0",
            private_key=space.key,
            out=root / "bundles" / f"{model.name}.zip",
            sample=model.sample,
        )
        space.store.push(bundle)
        space.store.promote(model.name, "1.0.0", "production")
    publish_regressor(space)
    entries = [
        {"name": "demo"},
        {"name": "price"},
        *({"name": name} for name in models),
        {"class_path": "tests.support.seed_model.ThresholdRiskModel"},
    ]
    config = space.config(root / "service.yaml", *entries, limits={"max_batch_size": MAX_BATCH})
    search_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the class-path model, and the tree under test
    with serve(config, root, env={"PYTHONPATH": search_path}) as running:
        yield Server(running, models)
        assert "Traceback" not in running.log(), running.log()


def publish_regressor(space: Workspace) -> None:
    """The demo's features, a number to predict: the answer without classes or probabilities."""
    frame, _ = training_data()
    target = frame["size"] * 2.0 + frame["color"]
    bundle = sealserve.pack(
        LinearRegression().fit(frame.to_numpy(dtype="float64"), target),
        name="price",
        version="1.0.0",
        private_key=space.key,
        out=space.root / "bundles" / "price.zip",
        sample=frame,
        features=FEATURE_OVERRIDES,
    )
    space.store.push(bundle)
    space.store.promote("price", "1.0.0", "production")


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.running.client() as client:
        yield client


def demo_records(rows: int = ROWS) -> list[Record]:
    rng = np.random.default_rng(5)
    return [
        {"size": round(float(rng.uniform(0, 10)), 3), "count": int(rng.integers(0, 10)), "color": ["RED", "GREEN", "BLUE"][index % 3]}
        for index in range(rows)
    ]


def batch_of(server: Server, name: str, rows: int = ROWS) -> list[Record]:
    """`rows` records, every optional feature present (null where the model's own records leave it out)."""
    if name in ("demo", "price"):
        return demo_records(rows)
    model = server.models[name]
    base = model.records
    return [{feature: base[index % len(base)].get(feature) for feature in model.features} for index in range(rows)]


def split(records: list[Record], names: list[str] | None = None) -> dict[str, Any]:
    names = names or list(records[0])
    return {
        "dataframe_split": {
            "columns": names,
            "data": [[record[name] for name in names] for record in records],
            "index": list(range(len(records))),
        }
    }


def inputs(records: list[Record]) -> dict[str, Any]:
    return {"inputs": {name: [record[name] for record in records] for name in records[0]}}


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        for part in table.to_batches(max_chunksize=max(1, table.num_rows // 3)):  # several record batches
            writer.write_batch(part)
    return sink.getvalue().to_pybytes()


def arrow_table(records: list[Record]) -> pa.Table:
    return pa.Table.from_pylist(records)


def post_arrow(http: httpx.Client, name: str, body: bytes, accept: str = "application/json") -> httpx.Response:
    return http.post(f"/api/models/{name}/predictions", content=body, headers={"Content-Type": ARROW, "Accept": accept})


def outputs(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    return response.json()["outputs"]


def error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def arrow_answer(response: httpx.Response) -> pa.Table:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW
    return ipc.open_stream(pa.py_buffer(response.content)).read_all()


def as_outputs(table: pa.Table) -> list[dict[str, Any]]:
    """An Arrow answer in the JSON answer's shape, to compare the two."""
    columns = table.to_pydict()
    labels = [name.removeprefix("probability_") for name in columns if name.startswith("probability_")]
    answers = []
    for index, prediction in enumerate(columns["prediction"]):
        answer: dict[str, Any] = {"prediction": prediction}
        if labels:
            answer["probabilities"] = {label: columns[f"probability_{label}"][index] for label in labels}
        answers.append(answer)
    return answers


@pytest.mark.parametrize("name", ["demo", "census", "imputed", "price"])
@pytest.mark.parametrize("rows", [ROWS, 3], ids=["columnar", "small"])
def test_column_shapes_and_arrow_answer_what_records_answer(server: Server, http: httpx.Client, name: str, rows: int) -> None:
    records = batch_of(server, name, rows)
    expected = outputs(http.post(f"/api/models/{name}/predictions", json=records))
    assert len(expected) == rows
    assert outputs(http.post(f"/api/models/{name}/predictions", json=split(records))) == expected
    assert outputs(http.post(f"/api/models/{name}/predictions", json=split(records, list(reversed(records[0]))))) == expected
    assert outputs(http.post(f"/api/models/{name}/predictions", json=inputs(records))) == expected
    body = arrow_body(arrow_table(records))
    assert outputs(post_arrow(http, name, body)) == expected
    answer = post_arrow(http, name, body, accept=ARROW)
    assert answer.headers["x-model-name"] == name
    assert answer.headers["x-model-version"] == "1.0.0"
    table = arrow_answer(answer)
    assert table.schema.metadata == {b"model_name": name.encode(), b"model_version": b"1.0.0"}
    assert as_outputs(table) == expected


def test_a_json_batch_can_be_answered_in_arrow(server: Server, http: httpx.Client) -> None:
    records = demo_records()
    expected = outputs(http.post("/api/models/demo/predictions", json=records))
    response = http.post("/api/models/demo/predictions", json=split(records), headers={"Accept": f"{ARROW}, application/json;q=0.5"})
    assert as_outputs(arrow_answer(response)) == expected


def test_nulls_reach_a_nullable_model_in_every_shape(server: Server, http: httpx.Client) -> None:
    records = [{"glucose": None, "bmi": 31.5, "age": 40}, {"glucose": 150.0, "bmi": None, "age": None}] * 10
    expected = outputs(http.post("/api/models/imputed/predictions", json=records))
    assert outputs(http.post("/api/models/imputed/predictions", json=split(records))) == expected
    assert outputs(http.post("/api/models/imputed/predictions", json=inputs(records))) == expected
    assert outputs(post_arrow(http, "imputed", arrow_body(arrow_table(records)))) == expected
    absent = {"inputs": {"bmi": [record["bmi"] for record in records]}}  # nullable columns may be left out, like fields of a record
    expected_absent = outputs(http.post("/api/models/imputed/predictions", json=[{"bmi": record["bmi"]} for record in records]))
    assert outputs(http.post("/api/models/imputed/predictions", json=absent)) == expected_absent


@pytest.mark.parametrize("shape", ["dataframe_split", "inputs", "arrow"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 70.0}, "Input should be less than or equal to"),
        ({"color": "PINK"}, "Input should be 'RED', 'GREEN' or 'BLUE'"),
        ({"count": -2}, "Input should be greater than or equal to 0"),
    ],
    ids=["above range", "unknown category", "negative count"],
)
def test_a_bad_value_in_row_k_is_named_as_in_a_records_batch(http: httpx.Client, shape: str, change: Record, message: str) -> None:
    records = demo_records()
    records[17] = records[17] | change
    expected = http.post("/api/models/demo/predictions", json=records)
    response = send(http, shape, records)
    assert expected.status_code == response.status_code == 422
    assert error(response)["details"][0] == error(expected)["details"][0]
    assert error(response)["details"][0]["loc"] == [17, next(iter(change))]
    assert message in error(response)["details"][0]["message"]


def send(http: httpx.Client, shape: str, records: list[Record]) -> httpx.Response:
    if shape == "arrow":
        return post_arrow(http, "demo", arrow_body(arrow_table(records)))
    return http.post("/api/models/demo/predictions", json=split(records) if shape == "dataframe_split" else inputs(records))


@pytest.mark.parametrize("shape", ["dataframe_split", "inputs"])
def test_a_wrong_type_in_row_k_is_named(http: httpx.Client, shape: str) -> None:
    records = demo_records()
    records[23] = records[23] | {"size": "big"}
    response = send(http, shape, records)
    assert response.status_code == 422
    detail = error(response)["details"][0]
    assert detail["loc"] == [23, "size"]
    assert "valid number" in detail["message"]


@pytest.mark.parametrize("shape", ["dataframe_split", "inputs", "arrow"])
def test_unknown_and_missing_columns_are_named(http: httpx.Client, shape: str) -> None:
    extra = [record | {"weight": 1.0} for record in demo_records()]
    response = send(http, shape, extra)
    assert response.status_code == 422
    assert "unknown column 'weight'" in error(response)["message"]
    missing = [{key: value for key, value in record.items() if key != "count"} for record in demo_records()]
    response = send(http, shape, missing)
    assert response.status_code == 422
    assert "missing column 'count'" in error(response)["message"]


def test_ragged_data_is_refused_naming_the_row(http: httpx.Client) -> None:
    body = split(demo_records())
    body["dataframe_split"]["data"][9] = body["dataframe_split"]["data"][9][:2]
    response = http.post("/api/models/demo/predictions", json=body)
    assert response.status_code == 422
    assert "row 9 has 2 values; expected 3" in error(response)["message"]
    body = inputs(demo_records())
    body["inputs"]["size"].pop()
    response = http.post("/api/models/demo/predictions", json=body)
    assert response.status_code == 422
    assert "column 'size' has 39 values" in error(response)["message"]


@pytest.mark.parametrize(
    "body",
    [{"dataframe_split": {"columns": ["size"]}}, {"dataframe_split": [1]}, {"inputs": [1, 2]}, {"inputs": {"size": 1}}, {"records": []}],
    ids=["no data", "split not an object", "inputs a list", "inputs not columns", "unknown key"],
)
def test_malformed_column_shapes_are_422(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post("/api/models/demo/predictions", json=body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("shape", ["records", "dataframe_split", "inputs", "arrow"])
def test_too_many_rows_is_the_records_413_in_every_shape(http: httpx.Client, shape: str) -> None:
    records = demo_records(MAX_BATCH + 1)
    response = http.post("/api/models/demo/predictions", json=records) if shape == "records" else send(http, shape, records)
    assert response.status_code == 413
    assert error(response)["code"] == "batch_too_large"


@pytest.mark.parametrize(
    "body",
    [b"", b"not arrow at all", b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"\x00" * 8, b"cut"],
    ids=["empty", "text", "bad metadata", "short"],
)
def test_a_malformed_arrow_stream_is_400(http: httpx.Client, body: bytes) -> None:
    response = post_arrow(http, "demo", body)
    assert response.status_code == 400, response.text
    assert error(response)["code"] == "malformed_arrow"


def test_a_truncated_arrow_stream_is_400(http: httpx.Client) -> None:
    body = arrow_body(arrow_table(demo_records()))
    for cut in (len(body) // 3, len(body) - 20):
        response = post_arrow(http, "demo", body[:cut])
        assert response.status_code == 400, response.text


def test_a_corrupted_arrow_batch_is_400_not_500(http: httpx.Client) -> None:
    body = bytearray(arrow_body(pa.table({"size": [1.0] * 30, "count": [1] * 30, "color": ["RED"] * 30})))
    offsets = b"".join(value.to_bytes(4, "little") for value in (0, 3, 6))  # the strings' offsets: point one far outside
    at = body.find(offsets)
    assert at > 0
    body[at + 8 : at + 12] = (10**9).to_bytes(4, "little")
    response = post_arrow(http, "demo", bytes(body))
    assert response.status_code == 400, response.text
    assert error(response)["code"] == "malformed_arrow"


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (pa.array(["RED"] * ROWS).dictionary_encode(), "dictionary"),
        (pa.array([[1]] * ROWS), "list<item: int64>"),
        (pa.array([{"a": 1}] * ROWS), "struct"),
        (pa.array([1] * ROWS), "takes string"),
    ],
    ids=["dictionary", "list", "struct", "int for a category"],
)
def test_arrow_types_the_feature_cannot_take_are_refused_before_reading(http: httpx.Client, column: pa.Array, message: str) -> None:
    table = pa.table({"size": [1.0] * ROWS, "count": [1] * ROWS, "color": column})
    response = post_arrow(http, "demo", arrow_body(table))
    assert response.status_code == 422, response.text
    assert message in error(response)["message"]
    assert "'color'" in error(response)["message"]


def test_compressed_arrow_is_refused(http: httpx.Client) -> None:
    table = arrow_table(demo_records())
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    response = post_arrow(http, "demo", sink.getvalue().to_pybytes())
    assert response.status_code == 400
    assert "compressed" in error(response)["message"]


def test_arrow_null_on_a_feature_that_is_not_nullable_is_named(http: httpx.Client) -> None:
    records: list[Record] = demo_records()
    records[5] = records[5] | {"size": None}
    response = post_arrow(http, "demo", arrow_body(arrow_table(records)))
    assert response.status_code == 422
    assert error(response)["details"][0]["loc"] == [5, "size"]


def test_arrow_integers_and_float32_are_cast_like_json_numbers(http: httpx.Client) -> None:
    records = [record | {"size": float(int(record["size"]))} for record in demo_records()]
    expected = outputs(http.post("/api/models/demo/predictions", json=records))
    table = pa.table(
        {
            "size": pa.array([int(record["size"]) for record in records], pa.int32()),
            "count": pa.array([float(record["count"]) for record in records], pa.float32()),
            "color": pa.array([record["color"] for record in records], pa.large_string()),
        }
    )
    assert outputs(post_arrow(http, "demo", arrow_body(table))) == expected


def test_hooks_that_record_bodies_see_an_arrow_request_as_json_columns() -> None:
    from sealserve.serve.request.columnar.arrow_write import ColumnsExchange

    records = demo_records(3)
    exchange = ColumnsExchange(arrow_body(arrow_table(records)), True, lambda: b'{"outputs": []}')
    assert orjson.loads(exchange.request_json()) == inputs(records)
    assert exchange.response_json() == b'{"outputs": []}'


def test_a_class_path_model_takes_columns_and_answers_in_arrow(http: httpx.Client) -> None:
    records = [{"body_mass_index": 20 + index % 30, "general_health": ["GOOD", "POOR"][index % 2]} for index in range(ROWS)]
    expected = outputs(http.post("/api/models/threshold_risk/predictions", json=records))
    assert outputs(http.post("/api/models/threshold_risk/predictions", json=split(records))) == expected
    assert outputs(post_arrow(http, "threshold_risk", arrow_body(arrow_table(records)))) == expected
    table = arrow_answer(post_arrow(http, "threshold_risk", arrow_body(arrow_table(records)), accept=ARROW))
    assert table.to_pylist() == expected
