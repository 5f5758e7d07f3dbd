"""Large batches take the columnar path: every protocol still answers each row as one-record requests do, and one bad
record anywhere gets the schema's message naming its row, as small batches do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.protocols.conftest import DEMO_RECORD, MAX_BATCH, Served

ORDER = ("size", "count", "color")
ROWS = MAX_BATCH  # at least COLUMNAR_ROWS: the columnar path
BAD_ROW = 17
Answer = tuple[int, Any]
AskBatch = Callable[[Served, httpx.Client, list[dict[str, Any]]], Answer]


def native(served: Served, http: httpx.Client, records: list[dict[str, Any]]) -> Answer:
    response = http.post("/api/models/demo/predictions", json=records)
    if response.status_code != 200:
        detail = response.json()["error"]["details"][0]
        return response.status_code, f"row {detail['loc'][0]}: {detail['message']}"
    return 200, [output["prediction"] for output in response.json()["outputs"]]


def kserve_v1(served: Served, http: httpx.Client, records: list[dict[str, Any]]) -> Answer:
    response = http.post("/v1/models/demo:predict", json={"instances": [[record[name] for name in ORDER] for record in records]})
    if response.status_code != 200:
        return response.status_code, response.json()["error"]
    return 200, response.json()["predictions"]  # the labels the bundle declares, decoded


def v2_inputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": "size", "shape": [len(records)], "datatype": "FP64", "data": [record["size"] for record in records]},
        {"name": "count", "shape": [len(records)], "datatype": "INT64", "data": [record["count"] for record in records]},
        {"name": "color", "shape": [len(records)], "datatype": "BYTES", "data": [record["color"] for record in records]},
    ]


def v2_rest(served: Served, http: httpx.Client, records: list[dict[str, Any]]) -> Answer:
    response = http.post("/v2/models/demo/infer", json={"inputs": v2_inputs(records), "outputs": [{"name": "label"}]})
    if response.status_code != 200:
        return response.status_code, response.json()["error"]
    return 200, response.json()["outputs"][0]["data"]


def v2_grpc(served: Served, http: httpx.Client, records: list[dict[str, Any]]) -> Answer:
    client = grpcclient.InferenceServerClient(served.grpc)
    try:
        inputs = []
        for item in v2_inputs(records):
            tensor = grpcclient.InferInput(item["name"], item["shape"], item["datatype"])
            dtype = {"FP64": np.float64, "INT64": np.int64, "BYTES": np.object_}[item["datatype"]]
            tensor.set_data_from_numpy(np.array(item["data"], dtype=dtype))
            inputs.append(tensor)
        result = client.infer("demo", inputs, outputs=[grpcclient.InferRequestedOutput("label")])
    except InferenceServerException as exc:
        return 400 if exc.status() == "StatusCode.INVALID_ARGUMENT" else 500, str(exc.message())
    finally:
        client.close()
    return 200, [label.decode() for label in result.as_numpy("label")]


PROTOCOLS: dict[str, AskBatch] = {"native": native, "kserve_v1": kserve_v1, "v2_rest": v2_rest, "v2_grpc": v2_grpc}


def records(change: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    batch = [
        {"size": round(float(rng.uniform(0, 10)), 3), "count": int(rng.integers(0, 10)), "color": ["RED", "GREEN", "BLUE"][index % 3]}
        for index in range(ROWS)
    ]
    batch[0] = dict(DEMO_RECORD)
    if change:
        batch[BAD_ROW] |= change
    return batch


def test_every_protocol_answers_a_large_batch_row_for_row_like_single_requests(served: Served, http: httpx.Client) -> None:
    batch = records()
    one_by_one = [http.post("/api/models/demo/prediction", json=record).json()["output"]["prediction"] for record in batch]
    assert one_by_one[0] == "large"
    assert len(set(one_by_one)) == 2  # both classes occur: a mix-up would show
    for name, ask in PROTOCOLS.items():
        assert ask(served, http, batch) == (200, one_by_one), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 70.0}, "Input should be less than or equal to"),
        ({"size": -1.0}, "Input should be greater than or equal to 0"),
        ({"color": "PINK"}, "Input should be 'RED', 'GREEN' or 'BLUE'"),
        ({"count": -2}, "Input should be greater than or equal to 0"),
    ],
    ids=["above range", "below range", "unknown category", "negative count"],
)
def test_one_bad_record_in_a_large_batch_is_named_by_every_protocol(
    served: Served, http: httpx.Client, change: dict[str, Any], message: str
) -> None:
    batch = records(change)
    for name, ask in PROTOCOLS.items():
        status, text = ask(served, http, batch)
        assert status == (422 if name == "native" else 400), (name, status, text)
        assert message in text, (name, text)
        assert str(BAD_ROW) in text, (name, text)


def test_the_batches_here_are_large_enough_for_the_columnar_path() -> None:
    from sealserve.serve.request.interface import COLUMNAR_ROWS

    assert ROWS >= COLUMNAR_ROWS
