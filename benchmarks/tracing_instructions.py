"""Machine instructions per native prediction with tracing off, at 0 % and at 1 % sampling, counted by valgrind.

Usage: .venv/bin/python benchmarks/tracing_instructions.py [--requests 1000] [--server]
Needs `valgrind` (Debian package). Each setting runs in a process of its own under callgrind with counting off; the
app is built, warmed up (300 requests), garbage collected and its collector paused, and counting is switched on for
`--requests` requests called directly through the ASGI app (no client, no socket), all threads included. Unlike
time, the count does not move with the machine's load: two runs of a setting agree to 0.1 %. The collector is paused
because a collection falls in one setting's window and not another's (13 % of a run's instructions). `--server`
counts a real server instead (`python -m sealserve serve`, one worker, PYTHONHASHSEED=0, its collector running),
answering `--requests` requests from 8 keep-alive HTTP clients in this process: uvicorn, the access line's write
and every thread of the server process count; the kernel's work and the exporter process do not. Bounded: about a
minute per setting on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {"off": None, "0 %": "0", "1 %": "0.01"}


async def counted(ratio: str | None, sink: int, requests: int) -> None:
    """Inside valgrind: build the app, warm it, then count `requests` requests."""
    from benchmarks.tracing_cpu import answer
    from sealserve.serve import create_app, load_config
    from tests.support.bundles import Workspace

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        workspace = Workspace.create(home)
        workspace.publish("demo", "1.0.0")
        config = load_config(workspace.config(home / "service.yaml", {"name": "demo"}))
        environ = (
            {}
            if ratio is None
            else {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink}",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": ratio,
            }
        )
        app = create_app(config, environ=environ)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        while not app.state.registry.ready:
            await asyncio.sleep(0.05)
        await answer(app, 300)
        gc.collect()
        gc.disable()
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True, check=True)
        await answer(app, requests)
        subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], capture_output=True, check=True)
        gc.enable()
        await lifespan.__aexit__(None, None, None)


def served(name: str, ratio: str | None, sink: int, requests: int, home: Path) -> int:
    """Outside valgrind: a real server under callgrind, counting on for `requests` HTTP requests; the count."""
    from tests.support.bundles import Workspace
    from tests.support.server import free_port

    folder = home / name.replace(" %", "pc")
    folder.mkdir()
    workspace = Workspace.create(folder)
    workspace.publish("demo", "1.0.0")
    config = workspace.config(workspace.root / "service.yaml", {"name": "demo"})
    environ = {**os.environ, "PYTHONHASHSEED": "0", "SEALSERVE_DRAIN_SECONDS": "0", "OTEL_SDK_DISABLED": "true"}
    if ratio is not None:
        del environ["OTEL_SDK_DISABLED"]
        environ.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink}",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": ratio,
            }
        )
    port, log = free_port(), workspace.root / "valgrind.txt"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--log-file={log}", f"--callgrind-out-file={workspace.root}/out.%p"]
    argv += [sys.executable, "-m", "sealserve", "serve", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with open(workspace.root / "server.txt", "wb") as output:
        server = subprocess.Popen(argv, env=environ, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _ready(url, server)
        _posts(url, 400)
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], capture_output=True, check=True)
        _posts(url, requests)
        subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], capture_output=True, check=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(300)
    found = re.search(r"Collected : (\d+)", log.read_text())
    assert found is not None, log.read_text()[-2000:]
    return int(found.group(1))


def _ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 600  # a start under valgrind takes a minute or two
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/api/health/ready", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("the server under valgrind did not get ready")


def _posts(url: str, count: int, clients: int = 8) -> None:
    """`count` native predictions from `clients` threads, each on its own keep-alive connection."""
    from benchmarks.tracing_cpu import BODY, PATH

    def post(share: int) -> None:
        with httpx.Client(base_url=url, timeout=120, headers={"content-type": "application/json"}) as client:
            for _ in range(share):
                assert client.post(PATH, content=BODY).status_code == 200

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, [count // clients] * clients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--server", action="store_true", help="count a real server answering HTTP requests, not the app alone")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        asyncio.run(counted(None if args.inside == "off" else args.inside, args.sink, args.requests))
        return
    args.requests -= args.requests % 8  # an equal share for each of the 8 clients of --server
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (apt-get install valgrind)")
    from tests.support.server import free_port

    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "events_overhead.py"), "--sink", str(sink_port)])
    counts: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for name, ratio in SETTINGS.items():
                if args.server:
                    counts[name] = served(name, ratio, sink_port, args.requests, Path(folder))
                    print(f"{name:<4} {counts[name] / args.requests:10,.0f} instructions per request", flush=True)
                    continue
                argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={folder}/out.%p"]
                argv += [sys.executable, __file__, "--inside", ratio or "off", "--sink", str(sink_port), "--requests", str(args.requests)]
                done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True)
                found = re.search(r"Collected : (\d+)", done.stderr)
                assert found is not None, done.stderr[-2000:]
                counts[name] = int(found.group(1))
                print(f"{name:<4} {counts[name] / args.requests:10,.0f} instructions per request", flush=True)
    finally:
        sink.kill()
        sink.wait()
    off = counts["off"]
    shown = "a real server over HTTP, its collector running" if args.server else "the app called directly, collector paused"
    print(f"\ninstructions per request over {args.requests} requests, {shown}, native endpoint:")
    for name, count in counts.items():
        extra = (count - off) / args.requests
        print(f"  {name:<4} {count / args.requests:10,.0f} ({extra:+8,.0f}, {(count / off - 1) * 100:+5.1f} % vs off)")


if __name__ == "__main__":
    main()
