"""The shipped gRPC descriptor matches its .proto, lives in a private pool, and speaks Triton's wire format."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from tritonclient.grpc import service_pb2

from sealserve.serve.request.protocols.grpc import generate
from sealserve.serve.request.protocols.grpc.oip_v2_descriptor import FILE_DESCRIPTOR
from sealserve.serve.request.protocols.v2_grpc import MESSAGES, POOL, RPCS


def test_the_shipped_descriptor_is_the_compiled_proto() -> None:
    """Fails after an edit to grpc_predict_v2.proto until `python -m sealserve.serve.request.protocols.grpc.generate` is run."""
    shipped = descriptor_pb2.FileDescriptorProto.FromString(FILE_DESCRIPTOR)
    assert shipped == descriptor_pb2.FileDescriptorProto.FromString(generate.compile_descriptor())
    assert generate.render_module(FILE_DESCRIPTOR).splitlines()[0] == generate.MODULE.read_text().splitlines()[0]


def test_messages_live_in_a_private_pool_next_to_tritonclients() -> None:
    assert POOL is not descriptor_pool.Default()
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindFileByName("grpc_predict_v2.proto")
    ours = MESSAGES["ModelInferRequest"]
    assert ours.DESCRIPTOR.full_name == service_pb2.ModelInferRequest.DESCRIPTOR.full_name == "inference.ModelInferRequest"
    service = POOL.FindServiceByName("inference.GRPCInferenceService")
    assert [method.name for method in service.methods] == list(RPCS)


def test_tritons_messages_parse_as_ours_and_back() -> None:
    request = service_pb2.ModelInferRequest(model_name="iris", model_version="1.0.0", id="x")
    request.inputs.add(name="input-0", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend([1.0, 2.0, 3.0, 4.0])
    request.raw_input_contents.append(b"\x00" * 16)
    request.parameters["binary_data_output"].bool_param = True
    ours = MESSAGES["ModelInferRequest"].FromString(request.SerializeToString())
    assert (ours.model_name, ours.inputs[0].name, list(ours.inputs[0].contents.fp32_contents)) == ("iris", "input-0", [1.0, 2.0, 3.0, 4.0])
    assert ours.parameters["binary_data_output"].bool_param is True
    assert service_pb2.ModelInferRequest.FromString(ours.SerializeToString()) == request
