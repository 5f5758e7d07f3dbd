"""Milliseconds per 10,000-record V2 tensor batch on gbc21, stage by stage, in process (the figures behind compare.py's
V2 batch rows, without MLServer or a quiet machine).

Usage: .venv/bin/python benchmarks/v2_batch.py [--batches 9] [--home DIR] [--profile OUT.prof]
(PYTHONPATH=OTHER/src measures another tree, e.g. main's, with the same requests.)

The request is compare.py's: one [10000, 21] tensor "input-0" (peers/servers.py grpc_request, v2_body); the gRPC call
is also timed with fp32_contents and with raw_input_contents. The app is compare.py's sealserve configuration (metrics,
access log, drift on), its gRPC port served by its lifespan. Stages (median ms of `--batches`, wall time): protobuf
parse, decode to tensors, tensors → validated batch, the model call, output encoding, protobuf serialize; then whole
calls: gRPC over loopback with a real channel (median and best, wall), REST through the ASGI app (mean CPU time, no sockets).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers.load import MODEL_INFER, asgi_cpu_per_request  # noqa: E402
from peers.servers import free_port  # noqa: E402

NAME = "gbc21"


def timed_ms(work: Callable[[], Any], count: int) -> list[float]:
    work()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1e3)
    return times


def median_ms(work: Callable[[], Any], count: int) -> float:
    return statistics.median(timed_ms(work, count))


def requests(rows: np.ndarray) -> dict[str, bytes]:
    """The batch as ModelInferRequests: typed fp64 (what compare.py sends), typed fp32, raw fp32 and raw fp64."""
    from sealserve.serve.request.protocols.v2_grpc import MESSAGES

    shaped: dict[str, bytes] = {}
    for label, datatype, dtype, raw in (
        ("fp64_contents", "FP64", np.float64, False),
        ("fp32_contents", "FP32", np.float32, False),
        ("raw FP32", "FP32", np.float32, True),
        ("raw FP64", "FP64", np.float64, True),
    ):
        request = MESSAGES["ModelInferRequest"](model_name=NAME)
        tensor = request.inputs.add(name="input-0", datatype=datatype, shape=list(rows.shape))
        values = rows.astype(dtype)
        if raw:
            request.raw_input_contents.append(values.tobytes())
        else:
            getattr(tensor.contents, f"{datatype.lower()}_contents").extend(values.ravel().tolist())
        shaped[label] = request.SerializeToString()
    return shaped


def stages(app: Any, raw: bytes, count: int) -> dict[str, float]:
    from sealserve.serve.request.protocols import v2_grpc as v2
    from sealserve.serve.request.protocols import v2_tensors as tensors

    service = app.state.protocols.grpc.service
    dataplane = service.dataplane
    served = dataplane.resolve(NAME)
    runner = dataplane.runner(served)
    interface = runner.interface
    request = v2.MESSAGES["ModelInferRequest"].FromString(raw)
    decoded = v2.decode_inputs(request)
    batch = tensors.batch(interface, decoded, service.limits)
    outputs = runner.run_blocking(batch)
    selected = interface.select(None)

    def encode() -> Any:
        response = v2.MESSAGES["ModelInferResponse"](model_name=served.name, model_version=served.version)
        if hasattr(v2, "encode_outputs"):
            v2.encode_outputs(response, selected, outputs)
            return response
        for output in selected:  # a tree from before encode_outputs (--baseline)
            response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape(len(outputs)))
            response.raw_output_contents.append(tensors.encode_raw(output.datatype, output.extract(outputs)))
        return response

    response = encode()
    return {
        "parse": median_ms(lambda: v2.MESSAGES["ModelInferRequest"].FromString(raw), count),
        "decode": median_ms(lambda: v2.decode_inputs(request), count),
        "validate": median_ms(lambda: tensors.batch(interface, decoded, service.limits), count),
        "model": median_ms(lambda: runner.run_blocking(batch), count),
        "encode": median_ms(encode, count),
        "serialize": median_ms(response.SerializeToString, count),
    }


def grpc_call_ms(target: str, raw: bytes, count: int) -> list[float]:
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(MODEL_INFER)
        return timed_ms(lambda: call(raw, timeout=120), count)


async def measure(home: Path, count: int, profile: Path | None) -> None:
    from sealserve.serve.app import create_app
    from sealserve.serve.config import validate_config

    rows = np.load(home / "batch.npy")
    shaped = requests(rows)
    body = orjson.dumps({"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]})
    model = {"name": NAME, "store_url": (home / "store").as_uri(), "keyring": str(home / "keyring.json"), "ref": "production"}
    port = free_port()
    config = {
        "service_title": "sealserve benchmark",
        "limits": {"max_body_bytes": 64 << 20, "max_batch_size": len(rows)},
        "protocols": {"grpc_port": port},
        "models": [model],
    }
    app = create_app(validate_config(config))
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 120
        while not app.state.registry.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if profile is not None:
            import cProfile

            target = f"127.0.0.1:{port}"
            cProfile.runctx("grpc_call_ms(target, shaped['fp64_contents'], count)", globals(), locals(), str(profile))
            return
        print(f"gbc21, {len(rows):,} records x {rows.shape[1]} features; median ms per batch of {count} (wall; shared machine: noisy)")
        columns = ("parse", "decode", "validate", "model", "encode", "serialize", "call med", "call best")
        print(f"{'request':<16}" + "".join(f"{name:>10}" for name in columns))
        for label, raw in shaped.items():
            timed = stages(app, raw, count)
            call = await asyncio.to_thread(grpc_call_ms, f"127.0.0.1:{port}", raw, count)
            figures = [*timed.values(), statistics.median(call), min(call)]
            print(f"{label:<16}" + "".join(f"{value:>10.2f}" for value in figures))
        cpu = await asgi_cpu_per_request(app, f"/v2/models/{NAME}/infer", body, count, warmup=1)
        print(f"V2 REST JSON FP64 (ASGI in process, CPU ms per batch): {cpu * 1e3:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument("--home", type=Path, help="a folder holding the trained model (kept between runs); a temporary one by default")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the fp64_contents gRPC calls here instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch)
        if not (home / "batch.npy").exists():
            from peers.models import gradient_boosting

            home.mkdir(parents=True, exist_ok=True)
            bench = gradient_boosting(home)
            np.save(home / "batch.npy", np.asarray(bench.rows(bench.batch), dtype=np.float64))
        asyncio.run(measure(home, args.batches, args.profile))


if __name__ == "__main__":
    main()
