"""Benchmark: cold start to ready, with one model and with ten, trial prediction on and off.

    .venv/bin/python benchmarks/cold_start.py [--rounds 3] [--runtime reference|uncompiled] [--src OTHER_TREE/src]

Trains the diabetes example once (examples/diabetes_risk/train.py --fast), packs it as ten bundles (diabetes_0 …
diabetes_9) into a local store, then starts `sealserve serve` on a free 127.0.0.1 port for each configuration in
interleaved rounds and times process start to the first 200 from /api/health/ready. Prints the medians, and the ten
models' cost of the trial as a ratio to the same server without it. `--runtime reference` serves the skops file
instead of the compiled ONNX form (`auto`); `--runtime uncompiled` packs the bundles without a compiled form, so `auto`
serves the skops file; `--src` starts another tree's sealserve (a before/after comparison).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples" / "diabetes_risk"))

from peers.envs import compile_sources  # noqa: E402
from peers.servers import Launch, Supervisor, free_port  # noqa: E402

import sealserve  # noqa: E402
from sealserve.bundle import keyring  # noqa: E402
from sealserve.store import open_store  # noqa: E402

SEALSERVE = Path(sys.executable).with_name("sealserve")
MODELS = 10


def publish(work: Path, compiled: bool = True) -> tuple[str, Path]:
    """Ten signed bundles of the diabetes example in a file store; the store's URL and the keyring."""
    from publish import FEATURE_OVERRIDES
    from train import train

    key, ring = work / "key.pem", work / "keyring.json"
    keyring.create_signing_key(key, ring, kid="bench")
    result = train(work / "train", fast=True)
    store = open_store(str(work / "store"))
    for index in range(MODELS):
        name = f"diabetes_{index}"
        folder = sealserve.pack(
            result.model,
            name=name,
            version="1.0.0",
            private_key=key,
            out=work / "bundles" / name,
            sample=result.features,
            features=FEATURE_OVERRIDES,
            class_labels=result.class_labels,
            compiled=compiled,
        )
        store.push(folder)
        store.promote(name, "1.0.0", "production")
    return str(work / "store"), ring


def config(work: Path, store: str, ring: Path, models: int, trial: bool, runtime: str = "auto") -> Path:
    entries = [
        {"name": f"diabetes_{index}", "store_url": store, "ref": "production", "keyring": str(ring), "trial_prediction": trial}
        | {"runtime": runtime}
        for index in range(models)
    ]
    path = work / f"service-{models}-{'trial' if trial else 'no-trial'}.yaml"
    path.write_text(yaml.safe_dump({"models": entries, "observability": {"access_log": False}}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--runtime",
        choices=("auto", "reference", "uncompiled"),
        default="auto",
        help="reference: serve the skops file (runtime: reference); uncompiled: bundles packed without a compiled form, runtime auto",
    )
    parser.add_argument("--src", type=Path, action="append", help="a sealserve tree the servers run (repeat to compare; default: this one)")
    args = parser.parse_args()
    trees: list[Path] = args.src or [ROOT / "src"]
    cases = [(tree, models, trial) for tree in trees for models in (1, MODELS) for trial in (True, False)]
    seconds: dict[tuple[Path, int, bool], list[float]] = {case: [] for case in cases}
    supervisor = Supervisor()
    compile_sources()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        store, ring = publish(work, compiled=args.runtime != "uncompiled")
        try:
            for _ in range(args.rounds):
                for tree, models, trial in cases:
                    port = free_port()
                    service = config(work, store, ring, models, trial, "auto" if args.runtime == "uncompiled" else args.runtime)
                    argv = [str(SEALSERVE), "serve", str(service), "--host", "127.0.0.1", "--port", str(port)]
                    log = work / f"server-{models}-{trial}.log"
                    launch = Launch(argv, "/api/health/ready", {"PYTHONPATH": str(tree), "SEALSERVE_DRAIN_SECONDS": "0"})
                    with supervisor.serve(launch, log, port, 0) as running:
                        seconds[(tree, models, trial)].append(running.cold_start)
        finally:
            supervisor.stop_all()
    print(f"cold start to ready (runtime {args.runtime}), medians of {args.rounds} interleaved rounds")
    for number, tree in enumerate(trees):
        print(f"  tree {number}: {tree}")
    print(f"{'models':>6} " + " ".join(f"{f'{number}: trial on s':>16} {f'{number}: trial off s':>16}" for number in range(len(trees))))
    for models in (1, MODELS):
        medians = [statistics.median(seconds[(tree, models, trial)]) for tree in trees for trial in (True, False)]
        print(f"{models:>6} " + " ".join(f"{value:>16.2f}" for value in medians))
    for number, tree in enumerate(trees):
        ratio = statistics.median(seconds[(tree, MODELS, True)]) / statistics.median(seconds[(tree, MODELS, False)])
        print(f"tree {number}: {MODELS} models, trial on / trial off: {ratio:.2f}x")


if __name__ == "__main__":
    main()
