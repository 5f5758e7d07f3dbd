"""Benchmark: what trusting a signer by identity costs per verification, side by side with a keyring key.

    .venv/bin/python benchmarks/identity_verify.py               # 30 rounds
    .venv/bin/python benchmarks/identity_verify.py --rounds 100

One small signed bundle (a fitted logistic regression, its metadata and a report) is signed three ways: by a keyring
key, by a certificate (leaf + intermediate, chain built to a PEM anchor), and keylessly by a private Sigstore
instance (Fulcio-like CA, CT log, Rekor-like checkpoint and SET; made here, offline). For each it times, per round:

- policy (once, it is the same file for all three): reading trust.yaml with its keyring, PEM anchor and
  trusted_root.json (the server does it at every load);
- verify: `verify_bundle` on the folder (stage + hash + signer + digests + grant), the policy already loaded.

Medians and p90 in milliseconds. The verify figure includes staging the same bytes each way, so the differences
between columns are the signer checks themselves.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sealserve.packing.build import pack, sign_folder  # noqa: E402
from sealserve.trust.identity.policy import TrustPolicy  # noqa: E402
from sealserve.trust.verify import verify_bundle  # noqa: E402
from tests.security.identity_fixtures import GITHUB, WORKFLOW, build_world, sign_by_certificate  # noqa: E402
from tests.support.bundles import CLASS_LABELS, FEATURE_OVERRIDES, fitted_model, training_data  # noqa: E402


def times(action: Callable[[], object], rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    root = Path(tempfile.mkdtemp(prefix="sealserve-identity-bench-"))
    try:
        world = build_world(root)
        frame, target = training_data()
        base = pack(
            fitted_model(frame, target),
            name="risk",
            version="1.0.0",
            private_key=world.team_key,
            out=root / "base",
            sample=frame,
            features=FEATURE_OVERRIDES,
            class_labels=CLASS_LABELS,
            compiled=False,
        )
        signers: dict[str, Callable[[Path], object]] = {
            "keyring key": lambda folder: sign_folder(folder, world.team_key, subject="risk"),
            "certificate": lambda folder: sign_by_certificate(folder, world.leaf(), (world.intermediate,)),
            "sigstore": lambda folder: world.sigstore.sign_folder(folder, subject="risk", identity=WORKFLOW, issuer=GITHUB),
        }
        TrustPolicy.load(world.policy)
        loaded = times(lambda: TrustPolicy.load(world.policy), rounds)
        print(f"reading trust.yaml: p50 {loaded[0]:.2f} ms, p90 {loaded[1]:.2f} ms ({rounds} rounds)")
        print(f"{'method':<14}{'verify p50':>12}{'p90':>8}   (ms)")
        for method, sign in signers.items():
            folder = Path(shutil.copytree(base, root / method.replace(" ", "-")))
            sign(folder)
            policy = TrustPolicy.load(world.policy)

            def check(folder: Path = folder, policy: TrustPolicy = policy) -> None:
                verify_bundle(folder, policy).discard()

            check()  # warm: imports and first-use costs are not per-verification costs
            verified = times(check, rounds)
            print(f"{method:<14}{verified[0]:>12.2f}{verified[1]:>8.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
