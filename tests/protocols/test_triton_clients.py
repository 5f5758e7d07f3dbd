"""NVIDIA Triton's own clients (tritonclient http and grpc) against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.protocols.conftest import Served

FLOWERS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


@pytest.fixture(scope="module")
def rest(served: Served) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(served.address, network_timeout=10.0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def rpc(served: Served) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(served.grpc)
    yield client
    client.close()


def demo_inputs(module: Any, color: str = "BLUE", size: float = 7.5) -> list[Any]:
    inputs = [module.InferInput("size", [1], "FP64"), module.InferInput("count", [1], "INT64"), module.InferInput("color", [1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([size], dtype=np.float64))
    inputs[1].set_data_from_numpy(np.array([3], dtype=np.int64))
    inputs[2].set_data_from_numpy(np.array([color], dtype=np.object_))
    return inputs


def flowers(module: Any, data: np.ndarray = FLOWERS) -> list[Any]:
    tensor = module.InferInput("input-0", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    return [tensor]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_client_infers_the_seed_example(rest: httpclient.InferenceServerClient, binary: bool) -> None:
    assert rest.is_server_live()
    assert rest.is_server_ready()
    assert rest.is_model_ready("sklearn-iris")
    assert not rest.is_model_ready("nope")
    tensor = httpclient.InferInput("input-0", [2, 4], "FP32")
    tensor.set_data_from_numpy(FLOWERS, binary_data=binary)
    result = rest.infer("sklearn-iris", [tensor], request_id="seed-004")
    assert result.as_numpy("predict").tolist() == [1, 1]
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("sklearn-iris", "1.0.0", "seed-004")


def test_http_client_reads_metadata_and_requested_outputs(rest: httpclient.InferenceServerClient) -> None:
    assert rest.get_server_metadata()["name"] == "sealserve"
    metadata = rest.get_model_metadata("demo")
    assert [(tensor["name"], tensor["datatype"]) for tensor in metadata["inputs"]] == [
        ("size", "FP64"),
        ("count", "INT64"),
        ("color", "BYTES"),
    ]
    assert metadata["versions"] == ["1.0.0"]
    outputs = [httpclient.InferRequestedOutput("label"), httpclient.InferRequestedOutput("predict_proba")]
    result = rest.infer("demo", demo_inputs(httpclient), outputs=outputs)
    assert result.as_numpy("label").tolist() == ["large"]
    assert result.as_numpy("predict_proba").shape == (1, 2)


def test_http_client_sees_errors_with_their_status(rest: httpclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as unknown:
        rest.infer("nope", flowers(httpclient))
    assert unknown.value.status() == "404"
    with pytest.raises(InferenceServerException) as invalid:
        rest.infer("demo", demo_inputs(httpclient, color="PINK"))
    assert invalid.value.status() == "400"
    assert "'color'" in invalid.value.message()


def test_http_client_uses_the_repository_extension(rest: httpclient.InferenceServerClient) -> None:
    index = rest.get_model_repository_index()
    assert {entry["name"]: entry["state"] for entry in index}["sklearn-iris"] == "READY"
    rest.load_model("sklearn-iris")
    assert rest.is_model_ready("sklearn-iris")


def test_grpc_client_infers_the_seed_example(rpc: grpcclient.InferenceServerClient) -> None:
    assert rpc.is_server_live()
    assert rpc.is_server_ready()
    assert rpc.is_model_ready("sklearn-iris")
    assert rpc.is_model_ready("sklearn-iris", "1.0.0")
    assert not rpc.is_model_ready("sklearn-iris", "2.0")
    result = rpc.infer("sklearn-iris", flowers(grpcclient), request_id="seed-004")
    assert result.as_numpy("predict").tolist() == [1, 1]
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("sklearn-iris", "1.0.0", "seed-004")


def test_grpc_client_reads_metadata_and_requested_outputs(rpc: grpcclient.InferenceServerClient) -> None:
    server = rpc.get_server_metadata()
    assert server.name == "sealserve"
    assert "binary_tensor_data" in server.extensions
    metadata = rpc.get_model_metadata("demo")
    assert (metadata.name, list(metadata.versions), metadata.platform) == ("demo", ["1.0.0"], "sealserve_skops")
    assert [(tensor.name, tensor.datatype, list(tensor.shape)) for tensor in metadata.outputs] == [
        ("predict", "INT64", [-1]),
        ("label", "BYTES", [-1]),
        ("predict_proba", "FP64", [-1, 2]),
    ]
    outputs = [
        grpcclient.InferRequestedOutput("predict"),
        grpcclient.InferRequestedOutput("label"),
        grpcclient.InferRequestedOutput("predict_proba"),
    ]
    result = rpc.infer("demo", demo_inputs(grpcclient), outputs=outputs)
    assert result.as_numpy("predict").tolist() == [1]
    assert result.as_numpy("label").tolist() == [b"large"]
    assert result.as_numpy("predict_proba").shape == (1, 2)


@pytest.mark.parametrize(
    ("model", "inputs", "code", "fragment"),
    [
        ("nope", lambda: flowers(grpcclient), "StatusCode.NOT_FOUND", "no model named 'nope'"),
        ("sklearn-iris", lambda: flowers(grpcclient, FLOWERS[:, :3].copy()), "StatusCode.INVALID_ARGUMENT", "expected [N, 4]"),
        (
            "sklearn-iris",
            lambda: flowers(grpcclient, np.array([[np.nan, 2.8, 4.8, 1.4]], dtype=np.float32)),
            "StatusCode.INVALID_ARGUMENT",
            "finite number",
        ),
        ("demo", lambda: demo_inputs(grpcclient)[:2], "StatusCode.INVALID_ARGUMENT", "missing input 'color'"),
        ("demo", lambda: demo_inputs(grpcclient, size=70.0), "StatusCode.INVALID_ARGUMENT", "less than or equal to"),
    ],
    ids=["unknown model", "wrong shape", "NaN", "missing input", "out of range"],
)
def test_grpc_errors_carry_the_matching_status(
    rpc: grpcclient.InferenceServerClient, model: str, inputs: Any, code: str, fragment: str
) -> None:
    with pytest.raises(InferenceServerException) as error:
        rpc.infer(model, inputs())
    assert error.value.status() == code
    assert fragment in error.value.message()


def test_grpc_typed_contents_and_wrong_datatypes_with_tritons_own_stub(served: Served) -> None:
    """Typed contents (not raw bytes), built with Triton's message classes: the wire contract is shared."""
    with grpc.insecure_channel(served.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="sklearn-iris", id="typed")
        tensor = request.inputs.add(name="input-0", datatype="FP32", shape=[2, 4])
        tensor.contents.fp32_contents.extend(FLOWERS.ravel().tolist())
        response = stub.ModelInfer(request, timeout=10)
        assert (response.model_version, response.id, list(response.outputs[0].shape)) == ("1.0.0", "typed", [2])
        assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [1, 1]

        request.inputs[0].datatype = "BYTES"
        with pytest.raises(grpc.RpcError) as wrong:
            stub.ModelInfer(request, timeout=10)
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "has datatype BYTES" in (wrong.value.details() or "")

        request.inputs[0].datatype = "FP16"
        with pytest.raises(grpc.RpcError) as raw_only:
            stub.ModelInfer(request, timeout=10)
        assert "raw_input_contents only" in (raw_only.value.details() or "")

        with pytest.raises(grpc.RpcError) as unknown:
            stub.ModelReady(service_pb2.ModelReadyRequest(name="nope"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
