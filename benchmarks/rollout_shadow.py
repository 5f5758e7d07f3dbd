"""What shadowing a candidate costs production: p50/p99 with and without a shadow candidate (`sample: 1.0`) at half
the server's saturated requests/s, and at saturation, with the shadow jobs dropped (counted) rather than production
slowed.

Usage: .venv/bin/python benchmarks/rollout_shadow.py [--rounds 3] [--seconds 10]
Needs `wrk` (Debian package). One real server (one worker, admin API on) serves demo 1.0.0; the candidate (1.1.0,
another fit) is set and aborted through the admin API between runs, so both conditions share one process. Saturation
is wrk's closed loop at 8 connections without a candidate; half of it is paced by wrk's `delay()` hook (each of 8
connections waits a random time, 8/rate s on average, before each request). Shadow figures come from
GET /api/models/demo/candidate after each run, once the shadow queue is empty (within a deadline).
Bounded: about rounds × 4 × (seconds + a few) seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}
CONNECTIONS = 8
PATH = "/api/models/demo/prediction"


def paced_script(path: Path, body: bytes, rate: float) -> Path:
    """wrk's POST with a random pause before each request (uniform, mean CONNECTIONS/rate s), so CONNECTIONS connections
    send `rate` requests/s in all at independent times; a fixed pause would keep them in step, queued behind each other."""
    mean_ms = CONNECTIONS / rate * 1000
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\nwrk.headers["Content-Type"] = "application/json"\n'
        'function init(args)\n  math.randomseed(tonumber(tostring({}):match("0x(%x+)"), 16) % 2147483647)\nend\n'
        f"function delay()\n  return math.floor(math.random() * {2 * mean_ms:.3f} + 0.5)\nend\n"
    )
    return path


def shadow(http: httpx.Client, on: bool) -> None:
    if on:
        response = http.put("/api/admin/models/demo/candidate", json={"ref": "staging", "mode": "shadow", "sample": 1.0})
    else:
        response = http.request("DELETE", "/api/admin/models/demo/candidate", json={"reason": "benchmark round"})
    response.raise_for_status()


def settled(http: httpx.Client, deadline: float) -> dict[str, Any]:
    """The comparison's totals once the shadow queue is empty (or the deadline passed)."""
    while True:
        view = http.get("/api/models/demo/candidate").json()
        if view["candidate"]["shadow_queue"] == 0 or time.monotonic() > deadline:
            return dict(view["comparison"]["since_start"])
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is needed (apt-get install wrk)")

    from benchmarks.peers import load
    from tests.support.bundles import Workspace
    from tests.support.server import serve

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        workspace = Workspace.create(home)
        workspace.publish("demo", "1.0.0")
        workspace.publish("demo", "1.1.0", alias="staging", seed=1)
        config = workspace.config(home / "service.yaml", {"name": "demo"}, admin={"enabled": True})
        body = orjson.dumps(RECORD)
        closed = load.lua_script(home / "post.lua", body)
        with serve(config, home) as server, server.client() as http:
            url = server.url + PATH
            load.wrk(wrk, url, closed, CONNECTIONS, 2)  # warm-up
            saturated = load.wrk(wrk, url, closed, CONNECTIONS, args.seconds)
            half = saturated.rps / 2
            paced = paced_script(home / "paced.lua", body, half)
            print(f"saturation without a candidate: {saturated.rps:.0f} req/s; half: {half:.0f} req/s", flush=True)
            results: dict[str, list[Any]] = {name: [] for name in ("half, off", "half, shadow", "saturated, off", "saturated, shadow")}
            for round_number in range(args.rounds):
                for name in results:
                    on = name.endswith("shadow")
                    if on:
                        shadow(http, True)
                    measure = load.wrk(wrk, url, paced if name.startswith("half") else closed, CONNECTIONS, args.seconds)
                    totals = settled(http, time.monotonic() + 60) if on else None
                    if on:
                        shadow(http, False)
                    results[name].append((measure, totals))
                    extra = ""
                    if totals:
                        call = totals["latency_ms"]["mean"]
                        extra = f"  shadow scored {totals['requests']:.0f}, dropped {totals['dropped']:.0f}, candidate call {call:.2f} ms"
                    line = f"{measure.rps:8.0f} req/s  p50 {measure.p50_ms:6.2f} ms  p99 {measure.p99_ms:6.2f} ms  errors {measure.errors}"
                    print(f"round {round_number + 1} {name:<18} {line}{extra}", flush=True)
    print(f"\nmedians of {args.rounds} interleaved rounds, {args.seconds:g} s each, {CONNECTIONS} connections, native endpoint, 1 worker:")
    base = {load_name: statistics.median(m.p50_ms for m, _ in results[f"{load_name}, off"]) for load_name in ("half", "saturated")}
    for name, runs in results.items():
        rps = statistics.median(m.rps for m, _ in runs)
        p50 = statistics.median(m.p50_ms for m, _ in runs)
        p99 = statistics.median(m.p99_ms for m, _ in runs)
        shadowed = [totals for _, totals in runs if totals]
        dropped = (
            f"  dropped {statistics.median(t['dropped'] for t in shadowed):,.0f} of {statistics.median(m.requests for m, _ in runs):,.0f}"
            if shadowed
            else ""
        )
        ratio = p50 / base[name.split(",")[0]]
        print(f"  {name:<18} {rps:8.0f} req/s  p50 {p50:6.2f} ms ({ratio:.2f}x off)  p99 {p99:6.2f} ms{dropped}")


if __name__ == "__main__":
    main()
