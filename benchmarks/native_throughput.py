"""Throughput and latency of the native prediction endpoint, plus where the time goes per request.

Usage: .venv/bin/python benchmarks/native_throughput.py [--seconds 10] [--connections 8] [--workers 1]
Needs `wrk` (Debian package) for the HTTP load; the in-process breakdown runs without it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "diabetes_risk"))

RECORD = {"pregnancies": 2, "glucose": 148.0, "blood_pressure": 72.0, "skin_thickness": 35.0, "bmi": 33.6, "pedigree": 0.627, "age": 50}


def per_call_us(statement: object, number: int = 2000) -> float:
    return min(timeit.repeat(statement, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def breakdown(home: Path) -> None:
    """Microseconds per step of the request path, measured in-process on the published bundle."""
    import orjson

    from sealserve.bundle.files import BundleLimits
    from sealserve.serve.config import BundleSource
    from sealserve.serve.lifecycle.loading import load_source
    from sealserve.serve.lifecycle.trial import TrialRunner

    source = BundleSource(name="diabetes_risk", store_url=str(home / "store"), ref="production", keyring=home / "keyring.json")
    served = load_source(source, BundleLimits(), TrialRunner())
    model = served.model
    body = json.dumps(RECORD).encode()
    record = model.input_schema.model_validate_json(body)
    row = model.adapter.from_records([record])  # type: ignore[attr-defined]
    prediction = model.runtime(row)  # type: ignore[attr-defined]
    output = model.predict(record)
    steps = {
        "validate JSON body (pydantic)": lambda: model.input_schema.model_validate_json(body),
        "record -> model input": lambda: model.adapter.from_records([record]),  # type: ignore[attr-defined]
        "estimator predict + predict_proba": lambda: model.runtime(row),  # type: ignore[attr-defined]
        "build output": lambda: model.encoders.native(model.answer(prediction)),  # type: ignore[attr-defined]
        "serialize response (orjson)": lambda: orjson.dumps(
            {"model_name": "m", "model_version": "1", "output": output.model_dump(mode="json")}
        ),
        "whole model.predict(record)": lambda: model.predict(record),
    }
    print("in-process cost per request step (µs, best of 5):")
    for name, step in steps.items():
        print(f"  {name:34s} {per_call_us(step):8.1f}")


def http_load(home: Path, seconds: int, connections: int, workers: int) -> None:
    if shutil.which("wrk") is None:
        print("wrk not found: skipping the HTTP load (apt-get install wrk)")
        return
    from tests.support.server import serve

    config = home / "service.yaml"
    config.write_text(
        f"models:\n  - name: diabetes_risk\n    store_url: {home / 'store'}\n    ref: production\n    keyring: {home / 'keyring.json'}\n"
    )
    script = home / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(RECORD))}\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    with serve(config, home, extra_args=("--workers", str(workers))) as server:
        subprocess.run(
            ["wrk", "-t1", "-c8", "-d2s", "-s", str(script), f"{server.url}/api/models/diabetes_risk/prediction"],
            capture_output=True,
            check=True,
        )
        result = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script),
                f"{server.url}/api/models/diabetes_risk/prediction",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    print(f"HTTP load: wrk, {connections} connections, {seconds}s, {workers} worker(s)")
    for pattern in (r"Requests/sec:\s+\S+", r"50%\s+\S+", r"99%\s+\S+", r"Non-2xx.*"):
        found = re.search(pattern, result.stdout)
        if found:
            print("  " + found.group(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from publish import publish

    with tempfile.TemporaryDirectory() as work:
        home = Path(work)
        publish(home, fast=True)
        breakdown(home)
        http_load(home, args.seconds, args.connections, args.workers)


if __name__ == "__main__":
    main()
