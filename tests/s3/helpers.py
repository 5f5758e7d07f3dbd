"""Real signed bundles for the S3 tests, built with sealserve.pack like a user would."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression

import sealserve
from sealserve.bundle import keyring, keys

RECORD = {"size": 7.5, "weight": 1.0}


@dataclass(frozen=True)
class Signer:
    """A signing key and the keyring file that trusts it."""

    root: Path
    key: keys.SigningKey
    keyring: Path

    @classmethod
    def create(cls, root: Path, kid: str = "s3-test-key") -> Signer:
        root.mkdir(parents=True, exist_ok=True)
        key = keys.generate(keys.Algorithm.ECDSA_P256, kid)
        keyring.Keyring().add(keyring.entry_for(key)).save(root / "keyring.json")
        return cls(root, key, root / "keyring.json")

    def bundle(self, name: str, version: str, *, seed: int = 0, report_bytes: int = 0) -> Path:
        """Pack a small fitted model as a bundle folder; `report_bytes` adds a random report file to make it big."""
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame({"size": rng.uniform(0, 10, 120), "weight": rng.uniform(0, 5, 120)})
        target = ((frame["size"] + frame["weight"]) > 7.5).astype(int)
        reports = []
        if report_bytes:
            report = self.root / f"blob-{name}-{version}.bin"
            with report.open("wb") as handle:
                remaining = report_bytes
                while remaining:
                    chunk = min(remaining, 8 << 20)
                    handle.write(os.urandom(chunk))
                    remaining -= chunk
            reports.append(report)
        out = self.root / "bundles" / f"{name}-{version}"
        return sealserve.pack(
            LogisticRegression().fit(frame.to_numpy(), target),
            name=name,
            version=version,
            private_key=self.key,
            out=out,
            sample=frame,
            reports=reports,
        )


def write_config(path: Path, models: list[dict[str, Any]], **service: Any) -> Path:
    path.write_text(yaml.safe_dump({"service_title": "S3 Test Service", **service, "models": models}))
    return path
