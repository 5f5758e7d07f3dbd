"""Small real bundles for service tests: a fitted model, a key, a keyring and a local store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import sealserve
from sealserve.bundle import keyring, keys
from sealserve.store import LocalStore
from tests.support.server import free_port, serve

if TYPE_CHECKING:  # tritonclient is imported by the tests that serve over gRPC only
    from tritonclient.grpc import InferenceServerClient

COLORS = {"RED": 0.0, "GREEN": 1.0, "BLUE": 2.0}
FEATURE_OVERRIDES: dict[str, dict[str, Any]] = {
    "color": {"categories": COLORS, "description": "Colour of the item."},
    "count": {"kind": "integer", "minimum": 0},
    "size": {"minimum": 0.0, "maximum": 10.0},
}
CLASS_LABELS = {0: "small", 1: "large"}


def training_data(rows: int = 200, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Two numeric features and one categorical feature (coded 0/1/2), with a learnable target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.uniform(0.0, 10.0, rows),
            "count": rng.integers(0, 20, rows).astype("float64"),
            "color": rng.integers(0, 3, rows).astype("float64"),
        }
    )
    target = ((frame["size"] + frame["color"]) > 6.0).astype(int)
    return frame, target


def fitted_model(frame: pd.DataFrame, target: pd.Series) -> LogisticRegression:
    return LogisticRegression().fit(frame.to_numpy(dtype="float64"), target)


@dataclass(frozen=True)
class Workspace:
    """A signing key, the keyring that trusts it, and a file store, all under one folder."""

    root: Path
    key: keys.SigningKey
    private_key: Path
    keyring: Path
    store: LocalStore

    @classmethod
    def create(cls, root: Path, kid: str = "test-key") -> Workspace:
        private_key, ring = root / "signing-key.pem", root / "keyring.json"
        key = keyring.create_signing_key(private_key, ring, kid=kid)
        return cls(root, key, private_key, ring, LocalStore(root / "store"))

    def publish(self, name: str = "demo", version: str = "1.0.0", alias: str | None = "production", **options: Any) -> Path:
        """Pack a fresh model as name/version, push it and point `alias` at it; return the bundle path."""
        frame, target = training_data(seed=int(options.pop("seed", 0)))
        out = self.root / "bundles" / f"{name}-{version}.zip"
        out.parent.mkdir(exist_ok=True)
        bundle = sealserve.pack(
            options.pop("model", None) or fitted_model(frame, target),
            name=name,
            version=version,
            private_key=options.pop("private_key", self.key),
            out=out,
            sample=frame,
            features=options.pop("features", FEATURE_OVERRIDES),
            class_labels=CLASS_LABELS,
            **options,
        )
        self.store.push(bundle)
        if alias:
            self.store.promote(name, version, alias)
        return bundle

    def config(self, path: Path, *models: dict[str, Any], **service: Any) -> Path:
        """Write a service YAML with the given model entries (bundle entries get this workspace's store and keyring)."""
        import yaml

        entries = [
            # trial_prediction off: a trial costs a fresh interpreter (~4 s) per model, and tests/serve/test_trial_prediction.py
            # and the examples' own service files keep it on
            {"store_url": self.store.url, "keyring": str(self.keyring), "ref": "production", "trial_prediction": False, **entry}
            if "class_path" not in entry
            else entry
            for entry in models
        ]
        path.write_text(yaml.safe_dump({"service_title": "Test Service", **service, "models": entries}))
        return path


@contextmanager
def serve_bundles(space: Workspace, bundles: dict[str, Path], log_dir: Path) -> Iterator[tuple[httpx.Client, InferenceServerClient]]:
    """Push each bundle as `production`, serve them all with a gRPC port, and yield an HTTP and a gRPC client; the
    server must log no traceback meanwhile."""
    from tritonclient.grpc import InferenceServerClient

    for bundle in bundles.values():
        pushed = space.store.push(bundle)
        space.store.promote(pushed.name, pushed.version, "production")
    grpc_port = free_port()
    config = space.config(log_dir / "service.yaml", *({"name": name} for name in bundles))
    with serve(config, log_dir, extra_args=("--grpc-port", str(grpc_port))) as server, server.client() as http:
        grpc = InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            yield http, grpc
        finally:
            grpc.close()
        assert "Traceback" not in server.log(), server.log()
