"""What tracing costs a request: requests/s and p99 at 8 connections with tracing off, at 1 % and at 100 % sampling,
each the median of interleaved rounds, and the server's CPU per request (its exporter process's included).

Usage: .venv/bin/python benchmarks/tracing_overhead.py [--rounds 3] [--seconds 10] [--baseline SRC] [--control]
Needs `wrk` (Debian package). Three real servers (one worker each, the same build and config but for the OTEL_*
variables) serve the same bundle on the native endpoint; the traced ones export over OTLP/HTTP to a separate process
answering every export at once (benchmarks/events_overhead.py's sink). `--baseline SRC` adds a fourth server importing
sealserve from another tree's `src` (a build without tracing), for what "off" costs against it; `--control` adds a
second untraced server and one sampling 0 %. Each round starts with the next server. The CPU per request (user +
system seconds of the server's process tree over the run, from /proc, divided by the requests answered) is what
this 2-core machine's scheduling disturbs least: wrk shares the cores, so requests/s moves with whatever else runs.
Bounded: about rounds × servers × (seconds + a few) seconds after start-up.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baseline", type=Path, help="another tree's src folder, served with nothing traced")
    parser.add_argument(
        "--control",
        action="store_true",
        help="add a second untraced server (how far two processes differ) and one sampling 0 %% (the unsampled path's cost)",
    )
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is needed (apt-get install wrk)")

    from benchmarks.peers import load
    from benchmarks.peers.machine import tree_cpu
    from tests.support.bundles import Workspace
    from tests.support.server import free_port, serve

    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        home = Path(folder)
        workspace = Workspace.create(home)
        workspace.publish("demo", "1.0.0")
        sink_port = free_port()
        sink = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "events_overhead.py"), "--sink", str(sink_port)])
        stack.callback(sink.kill)
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
        variables = {
            "off": {"OTEL_SDK_DISABLED": "true"},
            "1 %": {**traced, "OTEL_TRACES_SAMPLER_ARG": "0.01"},
            "100 %": {**traced, "OTEL_TRACES_SAMPLER_ARG": "1"},
        }
        if args.baseline is not None:
            variables = {"baseline": {"PYTHONPATH": str(args.baseline.resolve())}, **variables}
        if args.control:
            variables = {**variables, "off 2": {"OTEL_SDK_DISABLED": "true"}, "0 %": {**traced, "OTEL_TRACES_SAMPLER_ARG": "0"}}
        config = workspace.config(home / "service.yaml", {"name": "demo"})
        servers = {name: stack.enter_context(serve(config, home, env=env)) for name, env in variables.items()}
        script = load.lua_script(home / "post.lua", orjson.dumps(RECORD))
        results: dict[str, list[load.Measure]] = {name: [] for name in variables}
        cpu: dict[str, list[float]] = {name: [] for name in variables}  # µs of CPU per request
        for server in servers.values():  # warm-up: first-call paths, the exporter's connection
            load.wrk(wrk, f"{server.url}/api/models/demo/prediction", script, 8, 2)
        names = list(servers)
        for round_number in range(args.rounds):
            shift = round_number % len(names)  # each round starts one server later: no server is always measured first
            for name in names[shift:] + names[:shift]:
                server = servers[name]
                before = tree_cpu(server.process.pid)
                measure = load.wrk(wrk, f"{server.url}/api/models/demo/prediction", script, 8, args.seconds)
                cpu[name].append((tree_cpu(server.process.pid) - before) / max(measure.requests, 1) * 1e6)
                results[name].append(measure)
                line = f"{measure.rps:8.0f} req/s  p50 {measure.p50_ms:6.2f} ms  p99 {measure.p99_ms:6.2f} ms  errors {measure.errors}"
                line += f"  CPU {cpu[name][-1]:5.0f} µs/request"
                print(f"round {round_number + 1} {name:<6} {line}", flush=True)
    off = statistics.median(measure.rps for measure in results["off"])
    off_cpu = statistics.median(cpu["off"])
    print(f"\nmedians of {args.rounds} interleaved rounds, {args.seconds:g} s each, 8 connections, native endpoint, 1 worker:")
    for name, measures in results.items():
        rps = statistics.median(measure.rps for measure in measures)
        p50 = statistics.median(measure.p50_ms for measure in measures)
        p99 = statistics.median(measure.p99_ms for measure in measures)
        used = statistics.median(cpu[name])
        print(
            f"  {name:<6} {rps:8.0f} req/s ({(rps / off - 1) * 100:+5.1f} % vs off)  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            f"  CPU {used:5.0f} µs/request ({(used / off_cpu - 1) * 100:+5.1f} %)"
        )


if __name__ == "__main__":
    main()
