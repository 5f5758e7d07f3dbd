"""Explanations beside predictions on the real server, for the 100-tree GBC21 model (benchmarks/peers/models.py):
single-row p50 end to end (native routes, one keep-alive connection) and a 1,000-row batch's rows/s, plus the first
explanation (which imports shap and loads the reference model when the compiled form serves).

Usage: .venv/bin/python benchmarks/explanations.py [--singles 300] [--batches 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH_ROWS = 1000


def timed(client: Any, path: str, body: Any, rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.post(path, json=body)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--singles", type=int, default=300, help="single-row requests timed per route")
    parser.add_argument("--batches", type=int, default=10, help="1,000-row batches timed per route")
    arguments = parser.parse_args()

    import yaml

    from benchmarks.peers.models import gradient_boosting
    from tests.support.server import serve

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = gradient_boosting(work)
        config = work / "service.yaml"
        entry = {"name": model.name, "store_url": model.store_url, "keyring": str(model.keyring), "trial_prediction": False}
        config.write_text(yaml.safe_dump({"models": [entry], "limits": {"max_batch_size": BATCH_ROWS, "max_body_bytes": 8 << 20}}))
        base = f"/api/models/{model.name}"
        batch = model.batch[:BATCH_ROWS]
        with serve(config, work) as server, server.client() as client:
            client.timeout = 120
            runtime = client.get(base).json().get("runtime")
            first = timed(client, f"{base}/explanation", model.record, 1)[0]
            results: dict[str, tuple[float, float]] = {}
            for kind, one, many in (("prediction", "prediction", "predictions"), ("explanation", "explanation", "explanations")):
                timed(client, f"{base}/{one}", model.record, 20)  # warm
                singles = timed(client, f"{base}/{one}", model.record, arguments.singles)
                batches = timed(client, f"{base}/{many}", batch, arguments.batches)
                results[kind] = (statistics.median(singles) * 1000, BATCH_ROWS / statistics.median(batches))
    print(f"model gbc21 (served by {runtime}); first explanation {first * 1000:.0f} ms (shap import, reference load, explainer)")
    print(f"{'route':<12} {'1-row p50 ms':>13} {'1,000-row rows/s':>17}")
    for kind, (p50, rate) in results.items():
        print(f"{kind:<12} {p50:>13.2f} {rate:>17,.0f}")


if __name__ == "__main__":
    main()
