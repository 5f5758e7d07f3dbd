"""Class labels keep their JSON type on every protocol: an int class answers 1 (not "1"), a bool class true, a string
class "cat", on the native API (single and batch), KServe V1, V2 REST and gRPC, and Seldon, as the fitted model does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
from sklearn.linear_model import LogisticRegression, RidgeClassifier

import sealserve
from tests.support.bundles import Workspace, serve_bundles

VERSION = "1.0.0"
FEATURES = ["width", "height"]
KINDS = {"int": ("INT64", [3, 7, 11]), "string": ("BYTES", ["cat", "dog", "eel"]), "bool": ("BOOL", [False, True])}
ESTIMATORS = {"proba": lambda: LogisticRegression(max_iter=500), "plain": RidgeClassifier}


@dataclass(frozen=True)
class Labelled:
    estimator: Any
    rows: np.ndarray
    datatype: str

    def expected(self) -> list[Any]:
        return np.asarray(self.estimator.predict(self.rows)).tolist()


@dataclass(frozen=True)
class Served:
    http: httpx.Client
    grpc: grpcclient.InferenceServerClient
    models: dict[str, Labelled]


def fit(kind: str, estimator: str) -> Labelled:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(120, 2))
    datatype, classes = KINDS[kind]
    bins = np.digitize(rows[:, 0] + 0.5 * rows[:, 1], np.quantile(rows[:, 0], np.linspace(0, 1, len(classes) + 1)[1:-1]))
    target = np.array(classes, dtype=object)[bins]
    target = target.astype(bool) if kind == "bool" else target.astype(int) if kind == "int" else target.astype(str)
    return Labelled(ESTIMATORS[estimator]().fit(rows, target), rows[:24], datatype)


def typed(values: list[Any]) -> list[tuple[str, Any]]:
    return [(type(value).__name__, value) for value in values]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("labels")
    space = Workspace.create(root)
    models = {f"{kind}_{estimator}": fit(kind, estimator) for kind in KINDS for estimator in ESTIMATORS}
    bundles = {
        name: sealserve.pack(
            model.estimator,
            name=name,
            version=VERSION,
            private_key=space.key,
            out=root / name,
            sample=pd.DataFrame(model.rows, columns=FEATURES),
        )
        for name, model in models.items()
    }
    with serve_bundles(space, bundles, root) as (http, grpc):
        yield Served(http, grpc, models)


NAMES = [f"{kind}_{estimator}" for kind in KINDS for estimator in ESTIMATORS]


def records(model: Labelled) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, row, strict=True)) for row in model.rows.tolist()]


@pytest.mark.parametrize("name", NAMES)
def test_every_protocol_answers_the_class_with_its_json_type(served: Served, name: str) -> None:
    model, http = served.models[name], served.http
    expected = typed(model.expected())
    assert len({value for _, value in expected}) > 1, "the rows checked should reach more than one class"

    singles = [http.post(f"/api/models/{name}/prediction", json=record).json()["output"]["prediction"] for record in records(model)]
    assert typed(singles) == expected, "native single"
    batch = http.post(f"/api/models/{name}/predictions", json=records(model)).json()["outputs"]
    assert typed([output["prediction"] for output in batch]) == expected, "native batch"

    v1 = http.post(f"/v1/models/{name}:predict", json={"instances": records(model)}).json()["predictions"]
    assert typed(v1) == expected, "KServe V1"

    tensors = [
        {"name": feature, "datatype": "FP64", "shape": [len(model.rows)], "data": model.rows[:, i].tolist()}
        for i, feature in enumerate(FEATURES)
    ]
    v2 = {output["name"]: output for output in http.post(f"/v2/models/{name}/infer", json={"inputs": tensors}).json()["outputs"]}
    assert (v2["predict"]["datatype"], v2["predict"]["shape"]) == (model.datatype, [len(model.rows)])
    assert typed(v2["predict"]["data"]) == expected, "V2 REST"

    inputs = [grpcclient.InferInput(feature, [len(model.rows)], "FP64") for feature in FEATURES]
    for i, tensor in enumerate(inputs):
        tensor.set_data_from_numpy(np.ascontiguousarray(model.rows[:, i]))
    result = served.grpc.infer(name, inputs)
    assert result.get_output("predict").datatype == model.datatype
    answered = result.as_numpy("predict").tolist()
    assert typed([value.decode() if isinstance(value, bytes) else value for value in answered]) == expected, "V2 gRPC"


@pytest.mark.parametrize("name", NAMES)
def test_seldon_answers_the_class_or_the_probabilities_named_by_class(served: Served, name: str) -> None:
    model = served.models[name]
    body = {"data": {"names": FEATURES, "ndarray": model.rows.tolist()}}
    data = served.http.post(f"/seldon/default/{name}/api/v1.0/predictions", json=body).json()["data"]
    if name.endswith("_plain"):
        assert (data["names"], typed(data["ndarray"])) == ([], typed(model.expected()))
        return
    assert data["names"] == [str(value) for value in model.estimator.classes_.tolist()]  # column names are text in Seldon
    np.testing.assert_allclose(data["ndarray"], model.estimator.predict_proba(model.rows), rtol=0, atol=1e-9)
