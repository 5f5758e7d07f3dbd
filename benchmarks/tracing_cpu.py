"""The CPU time a native prediction costs with tracing off, at 0 %, 1 % and 100 % sampling, in one process.

Usage: .venv/bin/python benchmarks/tracing_cpu.py [--rounds 5] [--requests 1500]
Four apps (the same config but for the OTEL_* variables they are built with) answer one client each through httpx's
ASGI transport, one request at a time, in interleaved rounds; each round reports the process's CPU seconds per
request (all threads: the exporter's too), which a busy shared machine disturbs less than wall-clock throughput.
The traced apps export over OTLP/HTTP to benchmarks/events_overhead.py's sink in a separate process. Access lines go
to stderr; redirect it. Bounded: rounds × 4 × requests requests after start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


async def cpu_per_request(app: Any, requests: int) -> float:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for _ in range(100):  # warm-up
            await client.post("/api/models/demo/prediction", json=RECORD)
        started = time.process_time()
        for _ in range(requests):
            response = await client.post("/api/models/demo/prediction", json=RECORD)
            assert response.status_code == 200, response.text
        return (time.process_time() - started) / requests


async def measure(rounds: int, requests: int, sink: int) -> dict[str, list[float]]:
    from sealserve.serve import create_app, load_config
    from tests.support.bundles import Workspace

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        workspace = Workspace.create(home)
        workspace.publish("demo", "1.0.0")
        config = load_config(workspace.config(home / "service.yaml", {"name": "demo"}))
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink}", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
        variables: dict[str, dict[str, str]] = {
            "off": {},
            "0 %": {**traced, "OTEL_TRACES_SAMPLER_ARG": "0"},
            "1 %": {**traced, "OTEL_TRACES_SAMPLER_ARG": "0.01"},
            "100 %": {**traced, "OTEL_TRACES_SAMPLER_ARG": "1"},
        }
        apps, lifespans = {}, []
        for name, environ in variables.items():
            app = create_app(config, environ=environ)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            lifespans.append(lifespan)
            deadline = time.monotonic() + 60
            while not app.state.registry.ready and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            apps[name] = app
        results: dict[str, list[float]] = {name: [] for name in variables}
        try:
            for round_number in range(rounds):
                for name, app in apps.items():
                    results[name].append(await cpu_per_request(app, requests))
                    print(f"round {round_number + 1} {name:<6} {results[name][-1] * 1e6:8.1f} µs CPU per request", flush=True)
        finally:
            for lifespan in lifespans:
                await lifespan.__aexit__(None, None, None)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    from tests.support.server import free_port

    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "events_overhead.py"), "--sink", str(sink_port)])
    try:
        results = asyncio.run(measure(args.rounds, args.requests, sink_port))
    finally:
        sink.kill()
        sink.wait()
    off = statistics.median(results["off"])
    print(f"\nmedians of {args.rounds} interleaved rounds of {args.requests} requests, native endpoint, one process:")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<6} {median * 1e6:8.1f} µs CPU per request ({(median / off - 1) * 100:+5.1f} % vs off)")


if __name__ == "__main__":
    main()
