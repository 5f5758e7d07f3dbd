"""What each cross-cutting feature costs per request: the ASGI app driven in-process (no sockets, no HTTP parsing),
so the numbers are the server's own microseconds, steady even on a busy machine.

Usage: .venv/bin/python benchmarks/stack_overhead.py [--requests 20000]
Configurations: quiet (metrics, access log and drift off), each of them alone, the default (all on), and the
default with auth on (an API key; a JWT). Prints µs per request and the cost over quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers.load import asgi_cpu_per_request  # noqa: E402

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}
API_KEY = "ssk_benchmark-key-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET = "benchmark-secret-" + "x" * 40


def configs() -> dict[str, dict[str, Any]]:
    quiet = {"metrics": False, "access_log": False, "drift": {"enabled": False}}
    auth = {
        "enabled": True,
        "api_keys": [{"name": "bench", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "scopes": ["predict"]}],
        "jwt": {"secret": SECRET},
    }
    return {
        "quiet": {"observability": quiet},
        "metrics only": {"observability": {**quiet, "metrics": True}},
        "access log only": {"observability": {**quiet, "access_log": True}},
        "drift only": {"observability": {**quiet, "drift": {"enabled": True}}},
        "default (all on)": {},
        "default + auth, API key": {"auth": auth},
        "default + auth, JWT": {"auth": auth},
    }


async def measure(config: Any, count: int, headers: list[tuple[bytes, bytes]]) -> float:
    from sealserve.serve.app import create_app

    app = create_app(config)
    async with app.router.lifespan_context(app):
        registry = app.state.registry
        deadline = time.monotonic() + 60
        while not registry.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        rounds = [await asgi_cpu_per_request(app, "/api/models/demo/prediction", orjson.dumps(RECORD), count, headers) for _ in range(3)]
    return min(rounds)


def one(name: str, requests: int, home: Path) -> float:
    """CPU seconds per request of one configuration, in this (fresh) process."""
    from sealserve.serve.config import validate_config

    store, keyring = (home / "store").as_uri(), str(home / "keyring.json")
    model = {"name": "demo", "store_url": store, "keyring": keyring, "ref": "production", "trial_prediction": False}
    service = configs()[name]
    claims = {"sub": "bench", "exp": int(time.time()) + 3600, "iss": "sealserve", "aud": "sealserve", "scope": "predict"}
    credential = jwt.encode(claims, SECRET) if "JWT" in name else API_KEY
    headers = [(b"authorization", f"Bearer {credential}".encode())] if "auth" in service else []
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # access lines go to stderr: count their cost, not the terminal's
    return asyncio.run(measure(validate_config({**service, "models": [model]}), requests, headers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="Fresh processes per configuration, interleaved; the best counts.")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(one(args.one, args.requests, args.home))
        return

    from tests.support.bundles import Workspace

    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace.create(Path(folder))
        workspace.publish("demo", "1.0.0")
        names = list(configs())
        results: dict[str, float] = {}
        for _ in range(args.rounds):  # each configuration in its own process: no thread or cache of another one counts
            for name in names:
                command = [sys.executable, __file__, "--one", name, "--requests", str(args.requests), "--home", folder]
                seconds = float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])
                results[name] = min(seconds, results.get(name, seconds))
    quiet = results["quiet"]
    out = io.StringIO()
    out.write(f"{'configuration':<28} {'µs/request':>11} {'over quiet':>11}\n")
    for name, seconds in results.items():
        out.write(f"{name:<28} {seconds * 1e6:>11.1f} {(seconds - quiet) * 1e6:>+10.1f}µs ({(seconds / quiet - 1) * 100:+.0f} %)\n")
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()
