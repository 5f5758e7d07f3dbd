"""Records/s of one 10,000-record batch on the native batch route, per request shape, on the diabetes model.

    .venv/bin/python benchmarks/column_batches.py [--rounds 3] [--requests 10] [--only records] [--profile]

Shapes: a JSON array of records, MLflow's `dataframe_split` and `inputs`, and an Arrow IPC stream answered in Arrow
(and in JSON). The model is benchmarks/peers/models.py's diabetes_risk (the same bundle compare.py serves), served by
one `sealserve serve` with the limits raised to carry the batch (as compare.py does). Each round asks every shape in
turn (interleaved), `--requests` sequential requests after one warm-up; the table shows the medians of the rounds.
With --profile, the in-process decode of each shape is timed step by step instead (no server).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import machine  # noqa: E402
from peers.models import BATCH_RECORDS, BenchModel, diabetes  # noqa: E402

ARROW = "application/vnd.apache.arrow.stream"
Shape = tuple[bytes, dict[str, str]]


def arrow_stream(model: BenchModel) -> bytes:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = pa.Table.from_pylist(model.batch)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def shapes(model: BenchModel) -> dict[str, Shape]:
    names = list(model.features)
    rows = [[record[name] for name in names] for record in model.batch]
    json = {"Content-Type": "application/json"}
    stream = arrow_stream(model)
    return {
        "records JSON": (orjson.dumps(model.batch), json),
        "dataframe_split": (orjson.dumps({"dataframe_split": {"columns": names, "data": rows}}), json),
        "inputs (columns)": (orjson.dumps({"inputs": {name: [record[name] for record in model.batch] for name in names}}), json),
        "Arrow → Arrow": (stream, {"Content-Type": ARROW, "Accept": ARROW}),
        "Arrow → JSON": (stream, {"Content-Type": ARROW}),
    }


def records_per_second(client: httpx.Client, url: str, shape: Shape, requests: int) -> float:
    body, headers = shape
    client.post(url, content=body, headers=headers).raise_for_status()
    started = time.perf_counter()
    for _ in range(requests):
        client.post(url, content=body, headers=headers).raise_for_status()
    return BATCH_RECORDS * requests / (time.perf_counter() - started)


def serve_and_measure(
    work: Path, model: BenchModel, rounds: int, requests: int, only: str | None = None
) -> tuple[dict[str, list[float]], list[float]]:
    from tests.support.server import serve

    config = work / "service.yaml"
    service = {
        "limits": {"max_body_bytes": 64 << 20, "max_batch_size": BATCH_RECORDS},
        "models": [{"name": model.name, "store_url": model.store_url, "keyring": str(model.keyring), "ref": "production"}],
    }
    config.write_text(yaml.safe_dump(service))
    bodies = {name: shape for name, shape in shapes(model).items() if only is None or name.startswith(only)}
    results: dict[str, list[float]] = {name: [] for name in bodies}
    other_load = []  # share of the CPUs busy before each round, with the server idle
    with serve(config, work) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        url = f"/api/models/{model.name}/predictions"
        for _ in range(rounds):
            other_load.append(machine.settle(10))
            for name, shape in bodies.items():
                results[name].append(records_per_second(client, url, shape, requests))
    return results, other_load


def profile(model: BenchModel, work: Path) -> None:
    """Milliseconds per step of each shape's decode and answer, in process (best of 5)."""
    import timeit

    from sealserve.bundle.files import BundleLimits
    from sealserve.serve.config import Batching, BundleSource, RequestLimits
    from sealserve.serve.lifecycle.loading import load_source
    from sealserve.serve.lifecycle.trial import TrialRunner
    from sealserve.serve.request.columnar.arrow_read import parse_arrow
    from sealserve.serve.request.columnar.arrow_write import answer_table, ipc_stream
    from sealserve.serve.request.columnar.json_shapes import parse_batch
    from sealserve.serve.request.dataplane import ModelRunner

    source = BundleSource(name=model.name, store_url=model.store_url, ref="production", keyring=model.keyring)
    served = load_source(source, BundleLimits(), TrialRunner())
    runner = ModelRunner(served, Batching(max_batch_size=BATCH_RECORDS))
    interface = runner.interface

    class Plane:
        limits = RequestLimits(max_batch_size=BATCH_RECORDS)

        def check_rows(self, rows: int) -> None:
            pass

    plane: Any = Plane()
    bodies = shapes(model)
    batch = parse_batch(bodies["records JSON"][0], interface, plane)
    outputs = runner.run_blocking(batch)
    steps: dict[str, Callable[[], object]] = {
        "parse+validate records JSON": lambda: parse_batch(bodies["records JSON"][0], interface, plane),
        "parse+validate dataframe_split": lambda: parse_batch(bodies["dataframe_split"][0], interface, plane),
        "parse+validate inputs": lambda: parse_batch(bodies["inputs (columns)"][0], interface, plane),
        "read+validate Arrow": lambda: parse_arrow(bodies["Arrow → Arrow"][0], interface, plane),
        "model run (columns)": lambda: runner.run_blocking(batch),
        "JSON answer (outputs + orjson)": lambda: orjson.dumps({"outputs": interface.json_outputs(outputs)}),
        "Arrow answer (table + IPC)": lambda: ipc_stream(answer_table(interface, outputs, "m", "1")),
    }
    print(f"in-process ms per {BATCH_RECORDS:,}-record batch step (best of 5):")
    for name, step in steps.items():
        print(f"  {name:34s} {min(timeit.repeat(step, number=3, repeat=5)) / 3 * 1e3:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", help="the shapes whose names start with this (e.g. records, to measure a tree without the others)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = diabetes(work)
        if args.profile:
            profile(model, work)
            return
        results, other_load = serve_and_measure(work, model, args.rounds, args.requests, args.only)
    print(f"{BATCH_RECORDS:,}-record batch on {model.name}, native batch route", end="; ")
    print(f"{args.rounds} interleaved round(s) of {args.requests} requests")
    print("other load before each round: " + ", ".join(f"{share:.0%}" for share in other_load))
    print(f"  {'shape':18s} {'median rec/s':>14s} {'best rec/s':>12s}   rounds")
    for name, values in results.items():
        rounds = ", ".join(f"{value / 1000:,.0f}k" for value in values)
        print(f"  {name:18s} {statistics.median(values) / 1000:>13,.0f}k {max(values) / 1000:>11,.0f}k   {rounds}")


if __name__ == "__main__":
    main()
