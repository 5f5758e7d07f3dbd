"""What inference events cost a request: p99 and throughput at 8 connections with events off, on to a fast local sink,
and on to a dead sink (nothing listens), each the median of interleaved rounds.

Usage: .venv/bin/python benchmarks/events_overhead.py [--rounds 3] [--seconds 10]
Needs `wrk` (Debian package). Three real servers (one worker each) serve the same bundle on the native endpoint; the
fast sink is a separate process answering 202 at once. After each run the server's queue is waited out (every answered
request's events counted as sent or dropped, within a deadline), so no backlog spills into the next run. Bounded: about
rounds × 3 × (seconds + a few) seconds after start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


async def sink(port: int) -> None:
    """The fast sink: reads each POST (headers, Content-Length body) and answers 202, on one keep-alive connection."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                writer.write(ACCEPTED)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def counter(metrics: str, name: str, **labels: str) -> float:
    """The sum of one counter's series whose labels include `labels`."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def settle(url: str, deadline: float) -> dict[str, float]:
    """Wait until every answered request's events are sent or dropped; the totals so far."""
    while True:
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        answered = counter(metrics, "sealserve_requests_total", model="demo", status_class="2xx")
        totals = {
            "sent": counter(metrics, "sealserve_events_sent_total", model="demo"),
            **{
                reason: counter(metrics, "sealserve_events_dropped_total", model="demo", reason=reason)
                for reason in ("queue_full", "failed", "timeout")
            },
        }
        if sum(totals.values()) >= 2 * answered or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        asyncio.run(sink(args.sink))
        return
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is needed (apt-get install wrk)")

    from benchmarks.peers import load
    from tests.support.bundles import Workspace
    from tests.support.server import free_port, serve

    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        home = Path(folder)
        workspace = Workspace.create(home)
        workspace.publish("demo", "1.0.0")
        sink_port, dead_port = free_port(), free_port()
        sink_process = subprocess.Popen([sys.executable, __file__, "--sink", str(sink_port)])
        stack.callback(sink_process.kill)
        configs = {
            "events off": {},
            "fast sink": {"events": {"url": f"http://127.0.0.1:{sink_port}/"}},
            "dead sink": {"events": {"url": f"http://127.0.0.1:{dead_port}/"}},
        }
        servers = {
            name: stack.enter_context(serve(workspace.config(home / f"{index}.yaml", {"name": "demo", **model}), home))
            for index, (name, model) in enumerate(configs.items())
        }
        script = load.lua_script(home / "post.lua", orjson.dumps(RECORD))
        results: dict[str, list[load.Measure]] = {name: [] for name in configs}
        events: dict[str, dict[str, float]] = {}
        for server in servers.values():  # warm-up: first-call paths, the sender's connection
            load.wrk(wrk, f"{server.url}/api/models/demo/prediction", script, 8, 2)
        for round_number in range(args.rounds):
            for name, server in servers.items():
                measure = load.wrk(wrk, f"{server.url}/api/models/demo/prediction", script, 8, args.seconds)
                results[name].append(measure)
                if configs[name]:
                    events[name] = settle(server.url, time.monotonic() + 30)
                line = f"{measure.rps:8.0f} req/s  p50 {measure.p50_ms:6.2f} ms  p99 {measure.p99_ms:6.2f} ms  errors {measure.errors}"
                print(f"round {round_number + 1} {name:<10} {line}", flush=True)
    off = statistics.median(measure.p99_ms for measure in results["events off"])
    print(f"\nmedians of {args.rounds} interleaved rounds, {args.seconds:g} s each, 8 connections, native endpoint, 1 worker:")
    for name, measures in results.items():
        p99 = statistics.median(measure.p99_ms for measure in measures)
        rps = statistics.median(measure.rps for measure in measures)
        p50 = statistics.median(measure.p50_ms for measure in measures)
        counts = ", ".join(f"{key} {value:,.0f}" for key, value in events.get(name, {}).items() if value)
        print(f"  {name:<10} {rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms ({p99 / off:.2f}× off)  events: {counts or 'none'}")


if __name__ == "__main__":
    main()
