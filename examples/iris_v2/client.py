"""Ask the served iris model with NVIDIA Triton's own clients, over REST and over gRPC.

Usage::

    python examples/iris_v2/client.py --http 127.0.0.1:8000 --grpc 127.0.0.1:8081

Prints the predicted classes and the model version each transport answered with.
"""

import argparse
import json

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

MODEL = "sklearn-iris"
FLOWERS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


def over_http(address: str) -> dict[str, object]:
    client = httpclient.InferenceServerClient(address)
    try:
        assert client.is_server_ready()
        features = httpclient.InferInput("input-0", list(FLOWERS.shape), "FP32")
        features.set_data_from_numpy(FLOWERS)
        result = client.infer(MODEL, [features])
        return {"predict": result.as_numpy("predict").tolist(), "model_version": result.get_response()["model_version"]}
    finally:
        client.close()


def over_grpc(address: str) -> dict[str, object]:
    client = grpcclient.InferenceServerClient(address)
    try:
        assert client.is_server_ready()
        features = grpcclient.InferInput("input-0", list(FLOWERS.shape), "FP32")
        features.set_data_from_numpy(FLOWERS)
        result = client.infer(MODEL, [features])
        return {"predict": result.as_numpy("predict").tolist(), "model_version": result.get_response().model_version}
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", default="127.0.0.1:8000")
    parser.add_argument("--grpc", default="127.0.0.1:8081")
    args = parser.parse_args()
    print(json.dumps({"http": over_http(args.http), "grpc": over_grpc(args.grpc)}))


if __name__ == "__main__":
    main()
