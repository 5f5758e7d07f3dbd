"""A full [N, F] tensor batch over gRPC, as typed FP32/FP64 contents (read from their packed wire bytes) and as
raw_input_contents: every form answers the same bytes as V2 REST's JSON, and a bad value in the last row is named; V2
REST's JSON matrix (converted to floats in one pass) still names what is not a plain number."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from sealserve.serve.errors import ProtocolError
from sealserve.serve.request.protocols import v2_grpc
from tests.protocols.conftest import IrisServer

ROWS = 1000  # the iris example's max_batch_size (the default)
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
FORMS = ("fp32_contents", "fp64_contents", "raw FP32", "raw FP64")


def flowers(rows: int = ROWS) -> np.ndarray:
    rng = np.random.default_rng(3)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    return np.round(rng.uniform(low, high, size=(rows, 4)), 1)


def request(data: np.ndarray, form: str, outputs: tuple[str, ...] = ()) -> Any:
    datatype = "FP64" if "64" in form else "FP32"
    values = data.astype(np.float64 if datatype == "FP64" else np.float32)
    message = service_pb2.ModelInferRequest(model_name="sklearn-iris", id=form)
    tensor = message.inputs.add(name="input-0", datatype=datatype, shape=list(data.shape))
    if form.startswith("raw"):
        message.raw_input_contents.append(values.tobytes())
    else:
        getattr(tensor.contents, form).extend(values.ravel().tolist())
    for name in outputs:
        message.outputs.add(name=name)
    return message


@pytest.fixture(scope="module")
def stub(iris_server: IrisServer) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{iris_server.grpc_port}", options=options) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def test_every_form_of_a_full_batch_answers_what_v2_rest_answers(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, iris_server: IrisServer
) -> None:
    data = flowers()
    with httpx.Client(base_url=iris_server.url, timeout=30) as http:
        outputs = tuple(output["name"] for output in http.get("/v2/models/sklearn-iris").json()["outputs"])
        body = {"inputs": [{"name": "input-0", "shape": list(data.shape), "datatype": "FP32", "data": data.tolist()}]}
        rest = http.post("/v2/models/sklearn-iris/infer", json=body | {"outputs": [{"name": name} for name in outputs]}).json()
    expected = {output["name"]: output for output in rest["outputs"]}
    assert len(set(expected["predict"]["data"])) == 3  # every class occurs: a row mix-up would show
    answers = {}
    for form in FORMS:
        response = stub.ModelInfer(request(data, form, outputs), timeout=30)
        assert response.id == form
        answers[form] = list(response.raw_output_contents)
        for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
            rest_output = expected[output.name]
            assert (output.datatype, list(output.shape)) == (rest_output["datatype"], rest_output["shape"])
            if output.datatype == "BYTES":
                continue
            assert np.frombuffer(raw, v2_grpc.tensors.NUMPY_TYPES[output.datatype]).tolist() == np.ravel(rest_output["data"]).tolist()
    assert all(answer == answers["raw FP32"] for answer in answers.values())


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("value", "message"), [(31.0, "Input should be less than or equal to 30"), (float("nan"), "finite number")], ids=["range", "nan"]
)
def test_a_bad_value_in_the_last_row_of_a_full_batch_is_named(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, form: str, value: float, message: str
) -> None:
    data = flowers()
    data[ROWS - 1, 2] = value
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(request(data, form), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert f"row {ROWS - 1}, 'petal_length'" in details, details
    assert message in details, details
    stub.ModelInfer(request(flowers(), form), timeout=30)  # the same batch without the bad value is answered


def ours(message: Any) -> Any:
    return v2_grpc.MESSAGES["ModelInferRequest"].FromString(message.SerializeToString())


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_typed_float_contents_decode_to_the_values_sent_and_to_what_raw_contents_decode_to(datatype: str) -> None:
    dtype = np.dtype("<f4" if datatype == "FP32" else "<f8")
    special = [0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, np.finfo(dtype).tiny / 2, np.finfo(dtype).max]
    values = np.array(special + list(np.linspace(-1e6, 1e6, 30 - len(special))), dtype=dtype)
    typed = service_pb2.ModelInferRequest(model_name="m")
    tensor = typed.inputs.add(name="x", datatype=datatype, shape=[10, 3])
    getattr(tensor.contents, f"{datatype.lower()}_contents").extend(values.tolist())
    raw = service_pb2.ModelInferRequest(model_name="m")
    raw.inputs.add(name="x", datatype=datatype, shape=[10, 3])
    raw.raw_input_contents.append(values.tobytes())
    (from_typed,), (from_raw,) = v2_grpc.decode_inputs(ours(typed)), v2_grpc.decode_inputs(ours(raw))
    assert isinstance(from_typed.values, np.ndarray)
    assert from_typed.values.tobytes() == from_raw.values.tobytes() == values.tobytes()
    assert np.array_equal(from_typed.values, list(getattr(tensor.contents, f"{datatype.lower()}_contents")), equal_nan=True)


def test_unpacked_float_contents_on_the_wire_decode_too() -> None:
    """proto3 parsers must accept a repeated double written unpacked (one tag per value): the array is the same."""
    values = [1.5, -3.0, 2.0e300, 0.25]
    message = service_pb2.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype="FP64", shape=[2, 2])
    unpacked = b"".join(b"\x39" + np.float64(value).tobytes() for value in values)  # field 7, wire type 1 (64-bit)
    tensor_wire = message.inputs[0].SerializeToString() + b"\x2a" + len(unpacked).to_bytes(1, "little") + unpacked  # contents = 5
    wire = b"\x0a\x01m" + b"\x2a" + len(tensor_wire).to_bytes(1, "little") + tensor_wire  # model_name = 1, inputs = 5
    (decoded,) = v2_grpc.decode_inputs(v2_grpc.MESSAGES["ModelInferRequest"].FromString(wire))
    assert decoded.values.tolist() == values


def test_contents_in_two_fields_keep_their_meaning() -> None:
    """Values in a field other than the datatype's are refused as before; a second field beside the right one is ignored."""
    message = service_pb2.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype="FP64", shape=[2])
    tensor.contents.int64_contents.extend([1, 2])
    with pytest.raises(ProtocolError, match="has datatype FP64, but its values are in int64_contents"):
        v2_grpc.decode_inputs(ours(message))
    tensor.contents.fp64_contents.extend([0.5, 4.0])
    (decoded,) = v2_grpc.decode_inputs(ours(message))
    assert list(decoded.values) == [0.5, 4.0]
    tensor.shape[:] = [3]
    with pytest.raises(ProtocolError, match=r"has shape \[3\], which holds 3 values, but 2 were sent"):
        v2_grpc.decode_inputs(ours(message))


def rest_matrix(http: httpx.Client, data: list[Any]) -> httpx.Response:
    body = {"inputs": [{"name": "input-0", "shape": [len(data) // 4, 4], "datatype": "FP64", "data": data}]}
    return http.post("/v2/models/sklearn-iris/infer", json=body | {"outputs": [{"name": "predict"}]})


@pytest.mark.parametrize(
    ("value", "message"),
    [(True, "valid number"), ("1.5", "valid number"), (None, "valid number"), (10**400, "")],
    ids=["bool", "numeric text", "null", "huge integer"],
)
def test_a_non_number_in_the_last_row_of_a_rest_matrix_is_named(iris_server: IrisServer, value: Any, message: str) -> None:
    """The [N, F] JSON matrix is converted to floats in one pass; what is not a plain number still gets the schema's word."""
    data: list[Any] = flowers().ravel().tolist()
    data[-2] = value  # row 999, petal_length
    with httpx.Client(base_url=iris_server.url, timeout=30) as http:
        response = rest_matrix(http, data)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert "row 999, 'petal_length'" in error
        assert message in error
        data[-2] = 1  # the same row with an integer: a number like any other
        assert rest_matrix(http, data).status_code == 200


def test_whole_numbers_zeros_and_ones_in_a_rest_matrix_answer_like_their_floats(iris_server: IrisServer) -> None:
    floats = np.floor(flowers()).ravel()
    floats[::7] = 1.0  # many 0s and 1s: each is checked for a bool
    floats[::11] = 0.0
    with httpx.Client(base_url=iris_server.url, timeout=30) as http:
        as_floats = rest_matrix(http, floats.tolist())
        as_integers = rest_matrix(http, [int(value) for value in floats.tolist()])
    assert as_floats.status_code == 200, as_floats.text
    assert as_integers.json()["outputs"] == as_floats.json()["outputs"]
