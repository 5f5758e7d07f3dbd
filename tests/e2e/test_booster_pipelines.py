"""What XGBoost and LightGBM users have packs from the CLI and serves what the fitted model answers: a scikit-learn
pipeline ending in a booster (from .skops and from .joblib, and from Python), packed split, and an XGBoost UBJSON file.

One server for the module, compared on the native API (single and batch), KServe V1, V2 REST and V2 gRPC with the
fitted pipeline's own predict/predict_proba (never with sealserve's answers).
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import skops.io
import tritonclient.grpc as grpcclient
import xgboost
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sealserve
from tests.support.bundles import Workspace, serve_bundles
from tests.support.kinds import same
from tests.support.server import SEALSERVE

VERSION = "1.0.0"
FEATURES = ["a", "b", "c"]
LGBM_TRUST = ["lightgbm.sklearn.LGBMClassifier", "lightgbm.basic.Booster", "collections.defaultdict"]


@dataclass(frozen=True)
class Case:
    model: Any  # what answers are compared with
    classifier: bool
    cli: tuple[str, ...] = ()  # the model file and options, when packed from the CLI


@dataclass(frozen=True)
class Served:
    http: httpx.Client
    grpc: grpcclient.InferenceServerClient
    rows: np.ndarray
    cases: dict[str, Case]
    root: Path


def training() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(160, 3))
    return X, (X[:, 0] - X[:, 2] > 0).astype(int)


def cases(root: Path) -> dict[str, Case]:
    X, y = training()
    xgb_pipe = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=8, max_depth=3)).fit(X, y)
    skops.io.dump(xgb_pipe, root / "xgb-pipe.skops")
    lgbm_pipe = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(n_estimators=8, verbose=-1)).fit(X, np.array(["low", "high"])[y])
    joblib.dump(lgbm_pipe, root / "lgbm-pipe.joblib")
    ubj = xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(X, y)
    ubj.save_model(root / "model.ubj")
    return {
        "xgb-pipe-skops": Case(xgb_pipe, True, ("xgb-pipe.skops",)),  # no --trust: the booster is rebuilt, never given state
        "lgbm-pipe-joblib": Case(lgbm_pipe, True, ("lgbm-pipe.joblib", "--allow-pickle", *(f"--trust={name}" for name in LGBM_TRUST))),
        "xgb-ubj": Case(ubj, True, ("model.ubj",)),
        "xgb-reg-pipe": Case(make_pipeline(StandardScaler(), xgboost.XGBRegressor(n_estimators=8)).fit(X, X[:, 1] * 3), False),
        "lgbm-reg-pipe": Case(make_pipeline(StandardScaler(), lightgbm.LGBMRegressor(n_estimators=8, verbose=-1)).fit(X, X[:, 0]), False),
    }


def pack_from_cli(root: Path, name: str, arguments: tuple[str, ...]) -> Path:
    command = [SEALSERVE, "pack", *arguments, "--name", name, "--version", VERSION, "--private-key", "signing-key.pem"]
    command += ["--out", f"{name}.zip", "--sample", "train.csv"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False, timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"bundle {name} {VERSION} written to {name}.zip" in result.stdout
    return root / f"{name}.zip"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("booster-pipelines")
    space = Workspace.create(root)
    X, _ = training()
    sample = pd.DataFrame(X, columns=FEATURES)
    sample.to_csv(root / "train.csv", index=False)
    models = cases(root)
    bundles = {
        name: pack_from_cli(root, name, case.cli)
        if case.cli
        else sealserve.pack(case.model, name=name, version=VERSION, private_key=space.key, out=root / name, sample=sample)
        for name, case in models.items()
    }
    with serve_bundles(space, bundles, root) as (http, grpc):
        yield Served(http, grpc, np.vstack([X[:6], [[4.0, -4.0, 4.0]], np.zeros((1, 3))]), models, root)


NAMES = ["xgb-pipe-skops", "lgbm-pipe-joblib", "xgb-ubj", "xgb-reg-pipe", "lgbm-reg-pipe"]


def native_answers(case: Case, rows: np.ndarray) -> list[dict[str, Any]]:
    values = np.asarray(case.model.predict(rows)).tolist()
    if not case.classifier:
        return [{"prediction": float(value)} for value in values]
    keys = [str(label) for label in case.model.classes_.tolist()]
    chances = np.asarray(case.model.predict_proba(rows), dtype=np.float64).tolist()
    return [{"prediction": value, "probabilities": dict(zip(keys, row, strict=True))} for value, row in zip(values, chances, strict=True)]


def test_pipelines_are_packed_split_and_the_ubjson_file_as_xgboost_json(served: Served) -> None:
    for name in NAMES:
        detail = served.http.get(f"/api/models/{name}").json()
        assert detail["ready"], detail
        metadata = detail["metadata"]
        if name == "xgb-ubj":
            assert (metadata["format"], metadata["schema_version"], metadata.get("booster_step")) == ("xgboost", 1, None)
            continue
        assert (metadata["format"], metadata["schema_version"], metadata["required_types"]) == ("skops", 3, []), name
        assert metadata["booster_step"]["format"] == ("xgboost" if name.startswith("xgb") else "lightgbm"), name
    with zipfile.ZipFile(served.root / "lgbm-pipe-joblib.zip") as archive:
        assert sorted(archive.namelist()) == ["model.lightgbm.txt", "model.sig", "model.skops", "sealserve.json"]
        assert json.loads(archive.read("sealserve.json"))["booster_step"]["step"] == "lgbmclassifier"


@pytest.mark.parametrize("name", NAMES)
def test_native_single_and_batch_answer_what_the_fitted_model_answers(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    expected = native_answers(case, rows)
    records = [dict(zip(FEATURES, row, strict=True)) for row in rows.tolist()]
    singles = []
    for record in records:
        response = served.http.post(f"/api/models/{name}/prediction", json=record)
        assert response.status_code == 200, response.text
        singles.append(response.json()["output"])
    same(singles, expected, "native single")
    batch = served.http.post(f"/api/models/{name}/predictions", json=records)
    assert batch.status_code == 200, batch.text
    same(batch.json()["outputs"], expected, "native batch")


@pytest.mark.parametrize("name", NAMES)
def test_kserve_v1_answers_the_fitted_models_value(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    response = served.http.post(f"/v1/models/{name}:predict", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    same(response.json()["predictions"], [item["prediction"] for item in native_answers(case, rows)], "V1")


@pytest.mark.parametrize("name", NAMES)
def test_v2_rest_and_grpc_answer_the_fitted_models_values_and_probabilities(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    native = native_answers(case, rows)
    values = [item["prediction"] for item in native]
    expected: dict[str, tuple[str, list[int], list[Any]]] = {
        "predict": ("FP64" if not case.classifier else "BYTES" if isinstance(values[0], str) else "INT64", [len(rows)], values)
    }
    if case.classifier:
        chances = [value for item in native for value in item["probabilities"].values()]
        expected["predict_proba"] = ("FP64", [len(rows), len(native[0]["probabilities"])], chances)
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    body["outputs"] = [{"name": output_name} for output_name in expected]  # predict_proba is answered on request
    response = served.http.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert sorted(outputs) == sorted(expected)
    tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(np.ascontiguousarray(rows))
    result = served.grpc.infer(name, [tensor], outputs=[grpcclient.InferRequestedOutput(output_name) for output_name in expected])
    for output_name, (datatype, shape, data) in expected.items():
        assert (outputs[output_name]["datatype"], outputs[output_name]["shape"]) == (datatype, shape), output_name
        same(outputs[output_name]["data"], data, f"V2 REST {output_name}")
        array = result.as_numpy(output_name)
        assert (result.get_output(output_name).datatype, list(array.shape)) == (datatype, shape), output_name
        flat = [value.decode() if isinstance(value, bytes) else value for value in array.ravel().tolist()]
        same(flat, data, f"V2 gRPC {output_name}")


def test_a_ubjson_file_that_is_not_a_model_is_one_error_line(tmp_path: Path) -> None:
    Workspace.create(tmp_path)
    pd.DataFrame(np.zeros((3, 3)), columns=FEATURES).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "broken.ubj").write_bytes(b"{L\x00\x00\x00\x00\x00\x00\x00\x07lea")
    command = [SEALSERVE, "pack", "broken.ubj", "--name", "broken", "--version", VERSION, "--private-key", "signing-key.pem"]
    result = subprocess.run(
        [*command, "--out", "broken.zip", "--sample", "train.csv"], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 1
    assert "error (BundleFormatError): broken.ubj is not XGBoost UBJSON: a length of 7 runs past the end of the file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "broken.zip").exists()
