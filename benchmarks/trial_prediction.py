"""Benchmark: what the trial prediction (serve/lifecycle/trial.py) adds to loading one model.

    .venv/bin/python benchmarks/trial_prediction.py [--repeat 5]

Packs and signs two real bundles — the diabetes_risk example (examples/diabetes_risk/train.py --fast; a small
pipeline) and a 200-tree random forest on 20 features — verifies each once, then times on the same verified folder:

- load: the server's in-process deserialization (`build_model` in runtime/build.py: the loader, structure validation,
  BundleModel);
- runner start: the trial runner (multiprocessing's forkserver importing the model libraries), once per server
  process; a server overlaps it with fetching and verifying its models;
- trial: one trial child forked from the warm runner (the same load, predict and predict_proba on the trial
  records), and the child's peak RSS as it reports it (ru_maxrss);
- runner RSS: the idle trial runner's resident memory.

The trial's cost is what a load with `trial_prediction: true` takes on top of `load`. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "diabetes_risk"))

import sealserve  # noqa: E402
from sealserve.bundle import keyring  # noqa: E402
from sealserve.bundle.keyring import Keyring  # noqa: E402
from sealserve.runtime.build import build_model  # noqa: E402
from sealserve.serve.lifecycle.trial import TrialRunner  # noqa: E402
from sealserve.trust.verify import verify_bundle  # noqa: E402


def diabetes(work: Path, key: Path) -> Path:
    from publish import FEATURE_OVERRIDES, NAME
    from train import train

    result = train(work / "train", fast=True)
    return sealserve.pack(
        result.model,
        name=NAME,
        version="1.0.0",
        private_key=key,
        out=work / "diabetes",
        sample=result.features,
        features=FEATURE_OVERRIDES,
        class_labels=result.class_labels,
    )


def forest(work: Path, key: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(5000, 20)), columns=[f"x{i}" for i in range(20)])
    target = (frame["x0"] + frame["x1"] * frame["x2"] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1).fit(frame.to_numpy(), target)
    return sealserve.pack(model, name="forest", version="1.0.0", private_key=key, out=work / "forest", sample=frame, compiled=False)


def runner_rss_mib() -> float:
    """The resident memory of this process's forkserver child (the trial runner), from /proc."""
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
                return int(fields["VmRSS"].split()[0]) / 1024
    return float("nan")


def measure(bundle: Path, ring: Keyring, runner: TrialRunner, repeat: int) -> dict[str, float]:
    verified = verify_bundle(bundle, ring)
    try:
        loads, trials, peaks = [], [], []
        for _ in range(repeat):
            started = time.perf_counter()
            build_model(verified.path, verified.metadata, runtime="auto", trusted_types=(), allow_pickle=False)
            loads.append(time.perf_counter() - started)
            result = runner.run(verified.path, runtime="auto", trusted_types=(), allow_pickle=False, timeout=120, memory=4 << 30)
            assert result.refused is None, result.refused
            trials.append(result.seconds)
            peaks.append((result.peak_rss_kib or 0) / 1024)
    finally:
        verified.discard()
    size = sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file()) / (1 << 20)
    return {
        "MiB": size,
        "load": statistics.median(loads),
        "trial": statistics.median(trials),
        "peak": statistics.median(peaks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        key, ring = work / "key.pem", work / "keyring.json"
        keyring.create_signing_key(key, ring, kid="bench")
        bundles = {"diabetes_risk (example)": diabetes(work, key), "random forest, 200 trees": forest(work, key)}
        started = time.perf_counter()
        runner = TrialRunner()
        runner.start()
        print(f"trial runner start: {time.perf_counter() - started:.2f} s; idle RSS {runner_rss_mib():.0f} MiB")
        print(f"{'bundle':<26} {'size MiB':>9} {'load s':>8} {'trial s':>8} {'child peak RSS MiB':>19}")
        for name, bundle in bundles.items():
            row = measure(bundle, Keyring.load(ring), runner, args.repeat)
            print(f"{name:<26} {row['MiB']:>9.1f} {row['load']:>8.3f} {row['trial']:>8.2f} {row['peak']:>19.0f}")


if __name__ == "__main__":
    main()
