"""What tracing costs a request: requests/s and p99 at 8 connections with tracing off, at 1 % and at 100 % sampling,
each the median of interleaved rounds, and the server's CPU per request (its exporter process's included).

Usage: .venv/bin/python benchmarks/tracing_overhead.py [--rounds 3] [--seconds 10] [--baseline SRC] [--control]
Needs `wrk` (Debian package). Three real servers (one worker each, the same build and config but for the OTEL_*
variables) serve the same bundle on the native endpoint; the traced ones export over OTLP/HTTP to a separate process
answering every export at once (benchmarks/events_overhead.py's sink). `--baseline SRC` adds a fourth server importing
sealserve from another tree's `src` (a build without tracing), for what "off" costs against it; `--control` adds a
second untraced server and one sampling 0 %. Each round starts with the next server. With two CPUs or more, the
servers (every thread of their process trees, exporter processes included) run on the first CPU and wrk on the second,
so the scheduler does not trade them against each other (`--no-pin` leaves both free). Every server runs with the same
PYTHONHASHSEED (`--hash-seed`, 0 by default): with a random one each, identical servers differed by up to 30 % in CPU
per request, process by process, for the whole run (string hashing lays out every dict differently); with one seed, by
2 %. Another seed is another layout, the same for every server: run two to see the settings' order hold. Besides the medians, each
setting's requests/s is divided by off's of the same round, and the median of those ratios printed: a round's settings
ran within a minute of each other, so the machine's slower drifts cancel. After each run, the next waits until the
server's process tree is quiet (an exporter's backlog at 100 % took seconds to send, on the CPU the next server runs
on). The CPU per request (user + system seconds of
the server's process tree over the run, from /proc, divided by the requests answered) is printed too. Bounded: about
rounds × servers × (seconds + a few) seconds after start-up.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="let the servers and wrk run on any CPU")
    parser.add_argument("--hash-seed", type=int, default=0, help="every server's PYTHONHASHSEED")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is needed (apt-get install wrk)")

    from benchmarks.peers import load
    from benchmarks.peers.machine import pin_tree, tree_cpu, wait_quiet
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
        seed = {"PYTHONHASHSEED": str(args.hash_seed)}
        servers = {name: stack.enter_context(serve(config, home, env={**env, **seed})) for name, env in variables.items()}
        script = load.lua_script(home / "post.lua", orjson.dumps(RECORD))
        results: dict[str, list[load.Measure]] = {name: [] for name in variables}
        cpu: dict[str, list[float]] = {name: [] for name in variables}  # µs of CPU per request
        pinned = args.pin and len(os.sched_getaffinity(0)) >= 2
        serving, loading = ({0}, {1}) if pinned else (None, None)
        for server in servers.values():  # warm-up: first-call paths, the exporter's connection
            if serving is not None:
                pin_tree(server.process.pid, serving)
            load.wrk(wrk, f"{server.url}/api/models/demo/prediction", script, 8, 2, loading)
        names = list(servers)
        for round_number in range(args.rounds):
            shift = round_number % len(names)  # each round starts one server later: no server is always measured first
            for name in names[shift:] + names[:shift]:
                server = servers[name]
                before = tree_cpu(server.process.pid)
                measure = load.wrk(wrk, f"{server.url}/api/models/demo/prediction", script, 8, args.seconds, loading)
                cpu[name].append((tree_cpu(server.process.pid) - before) / max(measure.requests, 1) * 1e6)
                waited = wait_quiet(server.process.pid)  # its exporter's backlog, before the next server's run
                results[name].append(measure)
                line = f"{measure.rps:8.0f} req/s  p50 {measure.p50_ms:6.2f} ms  p99 {measure.p99_ms:6.2f} ms  errors {measure.errors}"
                line += f"  CPU {cpu[name][-1]:5.0f} µs/request  quiet after {waited:4.1f} s"
                print(f"round {round_number + 1} {name:<6} {line}", flush=True)
    off = statistics.median(measure.rps for measure in results["off"])
    off_cpu = statistics.median(cpu["off"])
    placement = "servers on CPU 0, wrk on CPU 1" if pinned else "unpinned"
    print(
        f"\nmedians of {args.rounds} interleaved rounds, {args.seconds:g} s each, 8 connections, native endpoint, 1 worker, {placement},"
        f" PYTHONHASHSEED={args.hash_seed}:"
    )
    for name, measures in results.items():
        rps = statistics.median(measure.rps for measure in measures)
        paired = statistics.median(mine.rps / theirs.rps for mine, theirs in zip(measures, results["off"], strict=True))
        p50 = statistics.median(measure.p50_ms for measure in measures)
        p99 = statistics.median(measure.p99_ms for measure in measures)
        used = statistics.median(cpu[name])
        print(
            f"  {name:<6} {rps:8.0f} req/s ({(rps / off - 1) * 100:+5.1f} % vs off; per round {(paired - 1) * 100:+5.1f} %)"
            f"  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  CPU {used:5.0f} µs/request ({(used / off_cpu - 1) * 100:+5.1f} %)"
        )


if __name__ == "__main__":
    main()
