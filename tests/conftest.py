"""Generic fixtures: a small fitted model with its training sample, a signing key with its keyring, a packed bundle.

Expensive objects are session-scoped and must be treated as read-only; tests that change a bundle copy it first
(`bundle_copy`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sealserve.bundle import keyring as keyring_module
from sealserve.bundle import keys
from tests.support.coverage_tally import CoverageTally

if TYPE_CHECKING:  # imported where used: xdist's controller loads this file too and runs no test
    import pandas as pd
    from playwright.sync_api import Browser
    from sklearn.linear_model import LogisticRegression

    from tests.s3.seaweed import Weed

# The seed's enum style: clients send readable labels, the model saw these codes (BRFSS: 1 = excellent … 5 = poor).
GENERAL_HEALTH = {"EXCELLENT": 1.0, "VERY_GOOD": 2.0, "GOOD": 3.0, "FAIR": 4.0, "POOR": 5.0}
FEATURE_OVERRIDES: dict[str, dict[str, Any]] = {
    "general_health": {"categories": GENERAL_HEALTH, "description": "Self-reported general health."},
    "bmi": {"description": "Body mass index.", "minimum": 10.0, "maximum": 80.0},
    "age": {"kind": "integer"},
}
CLASS_LABELS = {0: "low_risk", 1: "high_risk"}
BUNDLE_NAME = "risk"
BUNDLE_VERSION = "1.0.0"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CoverageTally(), "coverage-tally")


def make_training_frame(rows: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """An integer, a float and a coded categorical feature, with a learnable binary target."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(21, 80, rows),
            "bmi": rng.uniform(18.0, 45.0, rows).round(1),
            "general_health": rng.integers(1, 6, rows).astype("float64"),
        }
    )
    target = ((frame["bmi"] / 10 + frame["general_health"] + frame["age"] / 30) > 7.0).astype(int)
    return frame, target


@pytest.fixture(scope="session")
def training_frame() -> pd.DataFrame:
    return make_training_frame()[0]


@pytest.fixture(scope="session")
def fitted_model() -> LogisticRegression:
    from sklearn.linear_model import LogisticRegression

    frame, target = make_training_frame()
    return LogisticRegression(max_iter=500).fit(frame.to_numpy(dtype="float64"), target)


@pytest.fixture(scope="session")
def signing_key() -> keys.SigningKey:
    return keys.generate(keys.Algorithm.ECDSA_P256, "test-signer")


@pytest.fixture(scope="session")
def trusted_keyring(signing_key: keys.SigningKey) -> keyring_module.Keyring:
    """A keyring whose only (active) key is `signing_key`."""
    return keyring_module.Keyring().add(keyring_module.entry_for(signing_key))


@pytest.fixture(scope="session")
def packed_bundle(
    tmp_path_factory: pytest.TempPathFactory, fitted_model: LogisticRegression, training_frame: pd.DataFrame, signing_key: keys.SigningKey
) -> Path:
    """A signed folder bundle (skops) named risk 1.0.0 with one report; read-only, copy it before changing it."""
    from sealserve.packing.build import pack

    root = tmp_path_factory.mktemp("packed")
    report = root / "profile.html"
    report.write_text("<html><body>data profile</body></html>\n")
    return pack(
        fitted_model,
        name=BUNDLE_NAME,
        version=BUNDLE_VERSION,
        private_key=signing_key,
        out=root / "bundle",
        sample=training_frame,
        features=FEATURE_OVERRIDES,
        class_labels=CLASS_LABELS,
        metrics={"auc": 0.9},
        reports=[report],
    )


@pytest.fixture
def bundle_copy(packed_bundle: Path, tmp_path: Path) -> Path:
    """A private, writable copy of `packed_bundle`."""
    return Path(shutil.copytree(packed_bundle, tmp_path / "bundle"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, one per test module that looks at the pages."""
    from tests.support.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    from tests.s3.seaweed import BUCKET, Weed

    server = Weed(tmp_path_factory.mktemp("seaweedfs"))
    with pytest.MonkeyPatch.context() as patch:
        # Only the test server's keys: no ~/.aws files, no instance metadata lookups.
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_CONFIG_FILE", str(server.root / "no-aws-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(server.root / "no-aws-credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name, value in server.env().items():  # the CLI subprocesses and in-process stores use the default chain
            patch.setenv(name, value)
        server.start()
        try:
            server.client().create_bucket(Bucket=BUCKET)
            yield server
        finally:
            server.stop()


@pytest.fixture
def running_weed(weed: Weed) -> Iterator[Weed]:
    """The session server, guaranteed up before and after the test (tests that stop it get it back)."""
    if weed.process is None or weed.process.poll() is not None:
        weed.start()
    yield weed
    if weed.process is None or weed.process.poll() is not None:
        weed.start()
