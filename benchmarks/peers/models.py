"""The two benchmark models, trained once per run and written in every form a server needs.

- gbc21: StandardScaler + GradientBoostingClassifier(n_estimators=100) on 21 synthetic numeric features
  (make_classification, random_state=0);
- diabetes_risk: StandardScaler + LogisticRegression on the example's Pima data (examples/diabetes_risk).

Each is written as a joblib file (MLServer, rest_model_service), an ONNX file (the floor, via skl2onnx)
and a signed sealserve bundle packed with `sealserve.pack` defaults (skops), pushed and promoted in a
local store next to its keyring.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[2]
BATCH_RECORDS = 10_000
VERSION = "1.0.0"


@dataclass(frozen=True)
class BenchModel:
    name: str
    features: tuple[str, ...]
    integers: frozenset[str]  # features whose values travel as JSON integers
    record: dict[str, Any]  # the one-record request
    batch: list[dict[str, Any]]  # the BATCH_RECORDS-record request
    joblib_path: Path
    onnx_path: Path
    store_url: str
    keyring: Path

    def rows(self, records: list[dict[str, Any]]) -> list[list[float]]:
        return [[float(record[name]) for name in self.features] for record in records]


def _records(frame: pd.DataFrame, integers: frozenset[str]) -> list[dict[str, Any]]:
    return [
        {name: int(value) if name in integers else round(float(value), 6) for name, value in row.items()}
        for row in frame.to_dict("records")
    ]


def _to_onnx(model: Pipeline, width: int, path: Path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_model = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, width]))], options={"zipmap": False})
    path.write_bytes(onnx_model.SerializeToString())


def publish_bundle(work: Path, name: str, model: Pipeline, sample: pd.DataFrame, **pack_options: Any) -> tuple[str, Path]:
    """Pack with sealserve's defaults, push, promote to `production`; return (store URL, keyring)."""
    import sealserve
    from sealserve.bundle import keyring
    from sealserve.store import LocalStore

    private_key, ring = work / "signing-key.pem", work / "keyring.json"
    if not private_key.exists():
        keyring.create_signing_key(private_key, ring, kid="bench-key")
    store = LocalStore(work / "store")
    bundle = sealserve.pack(
        model, name=name, version=VERSION, private_key=private_key, out=work / f"{name}.zip", sample=sample, **pack_options
    )
    store.push(bundle)
    store.promote(name, VERSION, "production")
    return store.url, ring


def _build(work: Path, name: str, model: Pipeline, train: pd.DataFrame, batch: pd.DataFrame, **pack_options: Any) -> BenchModel:
    features = tuple(map(str, train.columns))
    integers = frozenset(str(name) for name, spec in pack_options.get("features", {}).items() if spec.get("kind") == "integer")
    folder = work / name
    folder.mkdir(parents=True)
    joblib_path = folder / "model.joblib"
    joblib.dump(model, joblib_path)
    onnx_path = folder / "model.onnx"
    _to_onnx(model, len(features), onnx_path)
    store_url, ring = publish_bundle(work, name, model, train, **pack_options)
    return BenchModel(
        name=name,
        features=features,
        integers=integers,
        record=_records(train.head(1), integers)[0],
        batch=_records(batch, integers),
        joblib_path=joblib_path,
        onnx_path=onnx_path,
        store_url=store_url,
        keyring=ring,
    )


def gradient_boosting(work: Path) -> BenchModel:
    X, y = make_classification(n_samples=2000 + BATCH_RECORDS, n_features=21, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{index:02d}" for index in range(21)])
    train, batch = frame.iloc[:2000], frame.iloc[2000:]
    model = make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=100, random_state=0))
    model.fit(train.to_numpy(dtype="float64"), y[:2000])
    return _build(work, "gbc21", model, train, batch)


def diabetes_fit() -> tuple[Pipeline, pd.DataFrame, dict[str, Any]]:
    """The diabetes example's pipeline fitted on its data, the data, and the pack options the example uses."""
    sys.path.insert(0, str(ROOT / "examples" / "diabetes_risk"))
    from publish import FEATURE_OVERRIDES  # examples/diabetes_risk/publish.py
    from train import CLASS_LABELS, load_data  # examples/diabetes_risk/train.py

    X, y = load_data()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X.to_numpy(dtype="float64"), y)
    return model, X, {"features": FEATURE_OVERRIDES, "class_labels": CLASS_LABELS}


def diabetes(work: Path) -> BenchModel:
    model, X, pack_options = diabetes_fit()
    rows = np.random.default_rng(0).integers(0, len(X), BATCH_RECORDS)
    return _build(work, "diabetes_risk", model, X, X.iloc[rows], **pack_options)


def train_all(work: Path) -> list[BenchModel]:
    return [gradient_boosting(work), diabetes(work)]
