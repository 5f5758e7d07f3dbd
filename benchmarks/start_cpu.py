"""Benchmark: CPU seconds the test suite pays per server start and per CLI call, trees side by side.

    .venv/bin/python benchmarks/start_cpu.py [--rounds 3] [--base OTHER_TREE/src]

Starts `sealserve serve` the way the tests do (tests/support: a Workspace's small signed bundle, trial prediction off,
a free loopback port, polled until /api/health/ready answers 200, then SIGTERM) with one and with two workers, and runs
`sealserve verify` and `sealserve pack` on that model. For each it reports the CPU time of the whole process tree
(user + system, children included): at ready, read from /proc, and in total until the process exited. Rounds
interleave this tree (PYTHONPATH=src) with `--base`; CPU time is steadier than wall time on a loaded machine, but the
figures are still noisy there. Compile both trees' bytecode first (`python -m compileall -q src`) for a like-for-like
comparison, as `make test` does.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers.machine import tree_cpu  # noqa: E402
from tests.support.bundles import Workspace, fitted_model, training_data  # noqa: E402
from tests.support.server import SEALSERVE, serve  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start(config: Path, work: Path, src: str, workers: int) -> tuple[float, float]:
    """CPU of one server start: at ready, and in total once it stopped."""
    before = children_cpu()
    with serve(config, work, env={"PYTHONPATH": src}, extra_args=("--workers", str(workers))) as server:
        ready = tree_cpu(server.process.pid)
    return ready, children_cpu() - before


def command(argv: list[str], src: str) -> float:
    before = children_cpu()
    subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": src})
    return children_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", help="another tree's src folder to compare with")
    args = parser.parse_args()
    trees = {"this": str(ROOT / "src"), **({"base": args.base} if args.base else {})}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        space = Workspace.create(work)
        bundle = space.publish()
        config = space.config(work / "service.yaml", {"name": "demo"})
        import skops.io

        frame, target = training_data()
        skops.io.dump(fitted_model(frame, target), work / "model.skops")
        frame.to_csv(work / "sample.csv", index=False)
        packed = iter(range(1_000_000))

        def pack(src: str) -> tuple[float]:
            argv = [SEALSERVE, "pack", str(work / "model.skops"), "--name", "cli", "--version", "1.0.0"]
            argv += ["--sample", str(work / "sample.csv"), "--private-key", str(space.private_key)]
            return (command([*argv, "--out", str(work / f"packed-{next(packed)}")], src),)

        verify = [SEALSERVE, "verify", str(bundle), "--keyring", str(space.keyring)]
        cases: dict[str, Callable[[str], tuple[float, ...]]] = {
            "serve 1 worker": lambda src: start(config, work, src, 1),
            "serve 2 workers": lambda src: start(config, work, src, 2),
            "sealserve verify": lambda src: (command(verify, src),),
            "sealserve pack": pack,
        }
        results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        for _ in range(args.rounds):
            for case, run in cases.items():
                for tree, src in trees.items():
                    results.setdefault((case, tree), []).append(run(src))
    print(f"CPU seconds, median of {args.rounds} rounds (ready / total for servers)")
    print(f"{'':18s}" + "".join(f"{tree:>18s}" for tree in trees))
    for case in cases:
        cells = []
        for tree in trees:
            columns = zip(*results[(case, tree)], strict=True)
            cells.append(" / ".join(f"{statistics.median(column):.2f}" for column in columns))
        print(f"{case:18s}" + "".join(f"{cell:>18s}" for cell in cells))


if __name__ == "__main__":
    main()
