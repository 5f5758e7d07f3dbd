"""Requests a fuzzer found answered 500, or slowly, or with unbounded echoes: each now gets a precise client error,
fast and small. Each case has a positive control beside it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import grpc
import httpx
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.protocols.conftest import DEMO_RECORD, MAX_BATCH, Served

INFER = "/inference.GRPCInferenceService/ModelInfer"


def test_a_binary_header_length_in_unicode_digits_is_a_400(http: httpx.Client) -> None:
    body = b'{"inputs": []}'
    for header in ("²", "١٤"):  # str.isdigit() accepts both; int() does not
        response = http.post("/v2/models/demo/infer", content=body, headers={"Inference-Header-Content-Length": header.encode()})
        assert response.status_code == 400, (header, response.text)
        assert "Inference-Header-Content-Length" in response.json()["error"]
    control = http.post("/v2/models/demo/infer", content=body, headers={"Inference-Header-Content-Length": str(len(body))})
    assert control.status_code == 400
    assert "Inference-Header-Content-Length" not in control.json()["error"]  # well-formed; refused for having no inputs


def seldon(http: httpx.Client, tags: dict[str, object]) -> httpx.Response:
    message = {"data": {"names": list(DEMO_RECORD), "ndarray": [list(DEMO_RECORD.values())]}, "meta": {"tags": tags}}
    return http.post("/seldon/default/demo/api/v1.0/predictions", json=message)


def test_seldon_answers_tags_holding_integers_past_64_bits(http: httpx.Client) -> None:
    response = seldon(http, {"small": 7, "big": 2**70, "nested": {"deep": [2**80]}, "text": "kept"})
    assert response.status_code == 200, response.text
    tags = response.json()["meta"]["tags"]
    assert tags["small"] == 7
    assert tags["text"] == "kept"


def test_a_seldon_tensor_declaring_millions_of_rows_is_refused_at_once(http: httpx.Client) -> None:
    started = time.perf_counter()
    response = http.post("/seldon/default/demo/api/v1.0/predictions", json={"data": {"tensor": {"shape": [10_000_000, 0], "values": []}}})
    assert response.status_code == 413
    assert time.perf_counter() - started < 1.0
    control = http.post("/seldon/default/demo/api/v1.0/predictions", json={"data": {"tensor": {"shape": [1, 3], "values": [7.5, 3, 2]}}})
    assert control.status_code != 413


def test_a_batch_of_empty_records_gets_a_bounded_answer(http: httpx.Client) -> None:
    response = http.post("/api/models/demo/predictions", json=[{}] * MAX_BATCH)  # 3 missing fields each
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert len(details) == 51
    assert details[-1]["message"] == f"and {3 * MAX_BATCH - 50} more problems"
    assert len(response.content) < 20_000


def test_a_malformed_grpc_message_is_invalid_argument(served: Served) -> None:
    with grpc.insecure_channel(served.grpc) as channel:
        call = channel.unary_unary(INFER, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as failure:
            call(b"\xff\xff\xff\xff", timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_a_long_unknown_model_name_is_not_echoed_whole(served: Served, http: httpx.Client) -> None:
    name = "m" * 20_000
    client = grpcclient.InferenceServerClient(served.grpc)
    try:
        with pytest.raises(InferenceServerException) as failure:
            client.get_model_metadata(name)
    finally:
        client.close()
    assert failure.value.status() == "StatusCode.NOT_FOUND"
    assert len(str(failure.value.message())) < 300
    response = http.post(f"/v1/models/{name}:predict", json={"instances": [[7.5, 3, "BLUE"]]})
    assert response.status_code == 404
    assert len(response.content) < 300
    assert "20000 characters" in response.json()["error"]


def test_a_body_over_the_limit_gets_a_413_every_client_reads(http: httpx.Client) -> None:
    """urllib sends the whole body, then reads, and asks to close the connection: without draining the rest first, the
    server's close with unread data resets the connection and the client never sees the 413."""
    url = f"{http.base_url}/api/models/demo/predictions"
    body = json.dumps([DEMO_RECORD] * 40_000).encode()
    assert 1 << 20 < len(body) < 2 << 20  # over the 1 MiB default, within the drained bound

    def by_urllib() -> tuple[int, str] | str:
        request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status), ""
        except urllib.error.HTTPError as refused:
            return int(refused.code), json.loads(refused.read())["error"]["code"]
        except OSError as failure:
            return repr(failure)

    assert [by_urllib() for _ in range(20)] == [(413, "payload_too_large")] * 20
    json_type = {"content-type": "application/json"}
    assert [requests.post(url, data=body, headers=json_type, timeout=10).status_code for _ in range(5)] == [413] * 5
    chunks = (body[start : start + 65536] for start in range(0, len(body), 65536))  # no Content-Length: refused while streaming
    assert requests.post(url, data=chunks, headers=json_type, timeout=10).status_code == 413
    assert httpx.post(url, content=body, headers=json_type, timeout=10).status_code == 413
    assert http.post("/api/models/demo/predictions", json=[DEMO_RECORD]).status_code == 200
