"""Run the kserve SDK's clients against a server; print what they got as JSON (one line).

Run in its own process (see test_kserve_sdk.py): kserve registers protobuf `inference.*` symbols in
the default descriptor pool, as tritonclient.grpc does in the test process, and the two cannot share
one. sealserve's own gRPC module uses a private pool, so it imports next to kserve here.

Usage: python kserve_clients.py BASE_URL GRPC_ADDRESS
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

import sealserve.serve.request.protocols.v2_grpc  # noqa: F401 - must coexist with kserve's generated classes

FLOWERS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


def request(binary: bool) -> InferRequest:
    tensor = InferInput("input-0", list(FLOWERS.shape), "FP32")
    tensor.set_data_from_numpy(FLOWERS, binary_data=binary)
    return InferRequest(model_name="sklearn-iris", infer_inputs=[tensor], request_id="kserve-sdk")


async def main(base_url: str, grpc_address: str) -> dict[str, object]:
    found: dict[str, object] = {}
    async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=10)) as v1:
        answer = await v1.infer(base_url, {"instances": FLOWERS.tolist()}, model_name="sklearn-iris")
        found["v1"] = {"predictions": answer["predictions"], "model_version": answer["model_version"]}
        found["v1_model_ready"] = await v1.is_model_ready(base_url, "sklearn-iris")
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=10)) as v2:
        found["v2_server_live"] = await v2.is_server_live(base_url)
        found["v2_server_ready"] = await v2.is_server_ready(base_url)
        found["v2_model_ready"] = await v2.is_model_ready(base_url, "sklearn-iris")
        for binary in (False, True):
            headers: dict[str, str] = {}
            response = await v2.infer(base_url, request(binary), model_name="sklearn-iris", response_headers=headers)
            key = "v2_binary" if binary else "v2_json"
            # kserve's InferResponse.from_bytes drops the body's model_version; the header carries it too
            found[key] = {
                "predict": response.outputs[0].as_numpy().tolist(),
                "model_version": headers.get("x-model-version"),
                "id": response.id,
            }
        try:
            await v2.infer(base_url, {"inputs": []}, model_name="nope")
        except Exception as exc:  # httpx.HTTPStatusError
            found["v2_unknown_model"] = str(exc)
    rpc = InferenceGRPCClient(grpc_address, timeout=10)
    try:
        found["grpc_server_ready"] = await rpc.is_server_ready()
        response = await rpc.infer(request(binary=True))
        found["grpc"] = {"predict": response.outputs[0].as_numpy().tolist(), "model_version": response.model_version}
    finally:
        await rpc.close()
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
