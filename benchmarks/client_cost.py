"""Benchmark: the test process's CPU for a request sent with httpx.post versus one client, and while polling a starting
server, per call and per server start (why tests/support/server.py polls through one client).

    .venv/bin/python benchmarks/client_cost.py [--requests 40] [--rounds 3]

Starts the real server (tests/support/server.py) on a free 127.0.0.1 port with one small bundle; prints the medians side
by side. The machine is shared, so the figures are indicative: the ratio is what matters.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.bundles import Workspace  # noqa: E402
from tests.support.server import serve  # noqa: E402

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def cpu_of(action: Callable[[], object]) -> float:
    """This process's CPU seconds for `action`."""
    started = time.process_time()
    action()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        space = Workspace.create(root)
        space.publish("demo", "1.0.0")
        config = space.config(root / "service.yaml", {"name": "demo"})

        def start_and_stop() -> None:
            with serve(config, root):
                pass

        starts = [cpu_of(start_and_stop) for _ in range(args.rounds)]
        with serve(config, root) as server:
            url = f"{server.url}/api/models/demo/prediction"

            def one_call_each() -> None:
                for _ in range(args.requests):
                    httpx.post(url, json=RECORD, timeout=10)

            def one_client() -> None:
                with server.fresh_client() as fresh:
                    for _ in range(args.requests):
                        fresh.post(url, json=RECORD)

            each = [cpu_of(one_call_each) for _ in range(args.rounds)]
            shared = [cpu_of(one_client) for _ in range(args.rounds)]
    print(f"{args.requests} requests, new connection each:  httpx.post {statistics.median(each):6.2f} s CPU", end="")
    print(f"   one client {statistics.median(shared):6.2f} s CPU")
    print(f"server start to ready and stop, this process's CPU (polling through one client): {statistics.median(starts):.2f} s")


if __name__ == "__main__":
    main()
