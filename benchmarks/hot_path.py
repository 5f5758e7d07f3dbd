"""sealserve's own microseconds per single-record request on the gbc21 model, beside the raw floor's, both driven
in-process through ASGI (no sockets, no HTTP parsing: what remains is each app's own work), CPU time, interleaved.

Usage: .venv/bin/python benchmarks/hot_path.py [--requests 20000] [--rounds 3] [--home DIR] [--baseline OTHER/src]
sealserve runs compare.py's default configuration (metrics, access log, drift on); the floor is peers/floor_app.py;
`--baseline` also runs the sealserve of another tree (e.g. main's) in the same rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers.load import asgi_cpu_per_request  # noqa: E402


async def sealserve(home: Path, body: bytes, count: int) -> float:
    from sealserve.serve.app import create_app
    from sealserve.serve.config import validate_config

    model = {"name": "gbc21", "store_url": (home / "store").as_uri(), "keyring": str(home / "keyring.json"), "ref": "production"}
    app = create_app(validate_config({"service_title": "sealserve benchmark", "models": [model]}))
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 120
        while not app.state.registry.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return await asgi_cpu_per_request(app, "/api/models/gbc21/prediction", body, count, warmup=300)


async def floor(home: Path, body: bytes, count: int) -> float:
    os.environ["FLOOR_MODEL"] = str(home / "gbc21" / "model.onnx")
    os.environ["FLOOR_FEATURES"] = ",".join(orjson.loads(body))
    from peers.floor_app import app

    return await asgi_cpu_per_request(app, "/", body, count, warmup=300)


def one(which: str, home: Path, count: int) -> float:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # access lines go to stderr: count their cost, not the terminal's
    body = (home / "record.json").read_bytes()
    return asyncio.run((sealserve if which == "sealserve" else floor)(home, body, count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="Fresh processes per app, interleaved; the best counts.")
    parser.add_argument("--home", type=Path, help="a folder holding the trained model (kept between runs); a temporary one by default")
    parser.add_argument("--baseline", type=Path, help="another tree's src folder, run beside this one")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(one(args.one, args.home, args.requests))
        return
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch)
        if not (home / "record.json").exists():
            from peers.models import gradient_boosting

            home.mkdir(parents=True, exist_ok=True)
            model = gradient_boosting(home)
            (home / "record.json").write_bytes(orjson.dumps(model.record))
        best: dict[str, float] = {}
        trees = {"sealserve": ROOT / "src", "floor": ROOT / "src", **({"baseline": args.baseline} if args.baseline else {})}
        for _ in range(args.rounds):
            for label, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                which = "floor" if label == "floor" else "sealserve"
                command = [sys.executable, __file__, "--one", which, "--home", str(home), "--requests", str(args.requests)]
                seconds = float(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout.split()[-1])
                best[label] = min(seconds, best.get(label, seconds))
    floor_us = best["floor"] * 1e6
    print(f"{'app':<12} {'µs/request (CPU, in-process, best round)':>42} {'above the floor':>16} {'x floor':>8}")
    for label, seconds in best.items():
        print(f"{label:<12} {seconds * 1e6:>42.1f} {seconds * 1e6 - floor_us:>16.1f} {seconds * 1e6 / floor_us:>8.2f}")


if __name__ == "__main__":
    main()
