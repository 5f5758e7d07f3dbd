"""Benchmark: how long the trial runner takes to be ready (its forkserver's preload), and one trial child's import of
what a skops-served model needs on top of it.

    .venv/bin/python benchmarks/trial_runner.py [--rounds 3] [--src OTHER_TREE/src ...]

Each measurement is a fresh interpreter running the given tree's sealserve: `TrialRunner().start()` (the runner
started and its preload done), then a child forked from it that imports skops.io and exits (what a child whose model
is served by scikit-learn pays when the runner has not imported it). Trees are interleaved round by round; prints the medians side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import importlib, json, time
from sealserve.serve.lifecycle.trial import TrialRunner

if __name__ == "__main__":
    started = time.perf_counter()
    runner = TrialRunner()
    runner.start()
    ready = time.perf_counter() - started
    started = time.perf_counter()
    child = runner._context.Process(target=importlib.import_module, args=("skops.io",))
    child.start()
    child.join()
    assert child.exitcode == 0
    print(json.dumps({"ready": ready, "child_skops": time.perf_counter() - started}))
"""


def measure(tree: Path, work: Path) -> dict[str, float]:
    script = work / "probe.py"
    script.write_text(PROBE)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--src", type=Path, action="append", help="a sealserve tree (repeat to compare; default: this one)")
    args = parser.parse_args()
    trees: list[Path] = args.src or [ROOT / "src"]
    results: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for tree in trees:
                results[tree].append(measure(tree, Path(folder)))
    print(f"trial runner, medians of {args.rounds} interleaved rounds")
    print(f"{'tree':<40} {'runner ready s':>15} {'child imports skops.io s':>25}")
    for tree in trees:
        ready = statistics.median(r["ready"] for r in results[tree])
        child = statistics.median(r["child_skops"] for r in results[tree])
        print(f"{tree!s:<40} {ready:>15.2f} {child:>25.2f}")


if __name__ == "__main__":
    main()
