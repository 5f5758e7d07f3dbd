"""One record, every protocol: the same answer and version when valid, the same schema message when not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.protocols.conftest import DEMO_RECORD, Served

Ask = Callable[[Served, httpx.Client, dict[str, Any]], tuple[int, str]]
ORDER = ("size", "count", "color")


def native(served: Served, http: httpx.Client, record: dict[str, Any]) -> tuple[int, str]:
    response = http.post("/api/models/demo/prediction", json=record)
    if response.status_code != 200:
        return response.status_code, response.json()["error"]["details"][0]["message"]
    body = response.json()
    return 200, f"{body['output']['prediction']}@{body['model_version']}"


def kserve_v1(served: Served, http: httpx.Client, record: dict[str, Any]) -> tuple[int, str]:
    response = http.post("/v1/models/demo:predict", json={"instances": [[record[name] for name in ORDER]]})
    if response.status_code != 200:
        return response.status_code, response.json()["error"]
    body = response.json()
    return 200, f"{body['predictions'][0]}@{body['model_version']}"


def v2_rest(served: Served, http: httpx.Client, record: dict[str, Any]) -> tuple[int, str]:
    inputs = [
        {"name": "size", "shape": [1], "datatype": "FP64", "data": [record["size"]]},
        {"name": "count", "shape": [1], "datatype": "INT64", "data": [record["count"]]},
        {"name": "color", "shape": [1], "datatype": "BYTES", "data": [record["color"]]},
    ]
    response = http.post("/v2/models/demo/infer", json={"inputs": inputs, "outputs": [{"name": "label"}]})
    if response.status_code != 200:
        return response.status_code, response.json()["error"]
    body = response.json()
    return 200, f"{body['outputs'][0]['data'][0]}@{body['model_version']}"


def v2_grpc(served: Served, http: httpx.Client, record: dict[str, Any]) -> tuple[int, str]:
    client = grpcclient.InferenceServerClient(served.grpc)
    try:
        inputs = [
            grpcclient.InferInput("size", [1], "FP64"),
            grpcclient.InferInput("count", [1], "INT64"),
            grpcclient.InferInput("color", [1], "BYTES"),
        ]
        inputs[0].set_data_from_numpy(np.array([record["size"]], dtype=np.float64))
        inputs[1].set_data_from_numpy(np.array([record["count"]], dtype=np.int64))
        inputs[2].set_data_from_numpy(np.array([record["color"]], dtype=np.object_))
        result = client.infer("demo", inputs, outputs=[grpcclient.InferRequestedOutput("label")])
    except InferenceServerException as exc:
        return 400 if exc.status() == "StatusCode.INVALID_ARGUMENT" else 500, str(exc.message())
    finally:
        client.close()
    return 200, f"{result.as_numpy('label')[0].decode()}@{result.get_response().model_version}"


def seldon(served: Served, http: httpx.Client, record: dict[str, Any]) -> tuple[int, str]:
    response = http.post(
        "/seldon/default/demo/api/v1.0/predictions", json={"data": {"names": list(record), "ndarray": [list(record.values())]}}
    )
    if response.status_code != 200:
        return response.status_code, response.json()["status"]["info"]
    body = response.json()
    [probabilities] = body["data"]["ndarray"]
    return 200, f"{body['data']['names'][probabilities.index(max(probabilities))]}@{body['meta']['tags']['model_version']}"


PROTOCOLS: dict[str, Ask] = {"native": native, "kserve_v1": kserve_v1, "v2_rest": v2_rest, "v2_grpc": v2_grpc, "seldon": seldon}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (DEMO_RECORD, None),
        ({**DEMO_RECORD, "size": 70.0}, "Input should be less than or equal to"),
        ({**DEMO_RECORD, "size": -1.0}, "Input should be greater than or equal to 0"),
        ({**DEMO_RECORD, "color": "PINK"}, "Input should be 'RED', 'GREEN' or 'BLUE'"),
        ({**DEMO_RECORD, "count": -2}, "Input should be greater than or equal to 0"),
    ],
    ids=["valid", "above range", "below range", "unknown category", "negative count"],
)
def test_every_protocol_applies_the_same_schema(served: Served, http: httpx.Client, record: dict[str, Any], message: str | None) -> None:
    answers = {name: ask(served, http, record) for name, ask in PROTOCOLS.items()}
    if message is None:
        assert set(answers.values()) == {(200, "large@1.0.0")}, answers
        return
    for name, (status, text) in answers.items():
        assert status in (400, 422), (name, status, text)
        assert message in text, (name, status, text)
    assert answers["native"][0] == 422
    assert {status for name, (status, _) in answers.items() if name != "native"} == {400}
