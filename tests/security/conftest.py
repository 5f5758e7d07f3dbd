"""The attack suite's live payload: a trusted-signed joblib bundle whose model, once deserialized, writes a marker file.

`attempt` loads a bundle the way a server configured with `allow_pickle: true` and `trusted_types: [builtins.open]`
would, so anything that gets as far as unpickling writes the marker; each test asserts a refusal, its type, and no
marker. `test_control_*` tests prove the payload fires when nothing refuses it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring
from sealserve.bundle.metadata import METADATA_FILE, ModelFormat
from sealserve.trust.verify import verify_bundle
from tests.conftest import BUNDLE_NAME, BUNDLE_VERSION
from tests.support.tamper import marker_pickle, replace_model_and_sign

TRUSTING_OPEN = ("builtins.open",)
Attempt = Callable[..., None]
Pickled = Callable[[bytes], Path]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    (tmp_path / "markers").mkdir()
    return tmp_path / "markers" / "pwned"


@pytest.fixture
def pickled_bundle(packed_bundle: Path, signing_key: keys.SigningKey, tmp_path: Path) -> Pickled:
    """A copy of `packed_bundle` turned into a joblib bundle holding the given pickle, signed by the trusted key."""

    def make(model: bytes) -> Path:
        folder = Path(shutil.copytree(packed_bundle, tmp_path / "bundle"))
        metadata = json.loads((folder / METADATA_FILE).read_text())
        metadata.update(format="joblib", model_file=ModelFormat.JOBLIB.filename, compiled=None, required_types=None)
        (folder / METADATA_FILE).write_text(json.dumps(metadata))
        for stale in (ModelFormat.SKOPS.filename, ModelFormat.ONNX.filename):
            (folder / stale).unlink(missing_ok=True)
        replace_model_and_sign(folder, model, signing_key)
        return folder

    return make


@pytest.fixture
def evil_bundle(pickled_bundle: Pickled, marker: Path) -> Path:
    """Correctly signed by the trusted key; its model file is the marker-writing pickle."""
    return pickled_bundle(marker_pickle(marker))


@pytest.fixture
def attempt() -> Attempt:
    """Verify `bundle` and load it (by default as a pickle-trusting server would); the caller expects this to raise."""

    def run(bundle: Path, keyring: Keyring, *, name: str = BUNDLE_NAME, version: str = BUNDLE_VERSION, **options: Any) -> None:
        verified = verify_bundle(bundle, keyring, name=name, version=version)
        try:
            verified.load(**({"allow_pickle": True, "trusted_types": TRUSTING_OPEN} | options))
        finally:
            verified.discard()

    return run
