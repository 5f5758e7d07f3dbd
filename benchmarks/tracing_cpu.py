"""The CPU time the request path of a native prediction costs with tracing off, at 0 %, 1 % and 100 % sampling.

Usage: .venv/bin/python benchmarks/tracing_cpu.py [--blocks 60] [--requests 250]
Four apps (the same config but for the OTEL_* variables they are built with) live in one process and answer the same
ASGI request, called directly (no client, no socket), in alternating blocks of `--requests`; each block's CPU time is
the event loop thread's own (`time.thread_time`), so neither the exporter thread nor a neighbour on the machine counts.
Alternating small blocks spreads the machine's drifts over every setting alike, which whole-run rounds do not: on
this 2-core machine two identical servers under wrk differ by up to 15 %. The traced apps export over OTLP/HTTP to
benchmarks/events_overhead.py's sink in a separate process. Access lines go to stderr; redirect it. Bounded: blocks × 4 ×
requests requests after start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODY = orjson.dumps({"size": 7.5, "count": 3, "color": "BLUE"})
PATH = "/api/models/demo/prediction"


async def answer(app: Any, requests: int) -> None:
    """`requests` native predictions through the whole ASGI app, as uvicorn would call it."""
    from benchmarks.peers.load import asgi_posts

    await asgi_posts(app, PATH, BODY, requests)


async def measure(blocks: int, requests: int, sink: int) -> dict[str, float]:
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
            await answer(app, 500)  # warm-up: first-call paths
            apps[name] = app
        spent = dict.fromkeys(apps, 0.0)
        try:
            names = list(apps)
            for block in range(blocks):
                for name in names if block % 2 == 0 else names[::-1]:
                    started = time.thread_time()
                    await answer(apps[name], requests)
                    spent[name] += time.thread_time() - started
        finally:
            for lifespan in lifespans:
                await lifespan.__aexit__(None, None, None)
        return {name: seconds / (blocks * requests) for name, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=60)
    parser.add_argument("--requests", type=int, default=250)
    args = parser.parse_args()
    from tests.support.server import free_port

    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "events_overhead.py"), "--sink", str(sink_port)])
    try:
        results = asyncio.run(measure(args.blocks, args.requests, sink_port))
    finally:
        sink.kill()
        sink.wait()
    off = results["off"]
    print(f"\nevent loop thread CPU per request, {args.blocks} alternating blocks of {args.requests}, native endpoint:")
    for name, seconds in results.items():
        print(f"  {name:<6} {seconds * 1e6:7.1f} µs ({(seconds - off) * 1e6:+6.1f} µs, {(seconds / off - 1) * 100:+5.1f} % vs off)")


if __name__ == "__main__":
    main()
