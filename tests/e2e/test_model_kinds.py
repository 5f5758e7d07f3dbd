"""Multi-output models, clusterers and outlier detectors pack with their own task and the real server answers what the
fitted estimator answers, on the native API (single and batch), KServe V1, V2 REST, V2 gRPC and Seldon.

One server for the module; the multi-output regressor is packed from the CLI (`--target y1 --target y2`), the others
from Python. Expected answers come from the in-memory estimators, never from the server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import skops.io
import tritonclient.grpc as grpcclient
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.mixture import GaussianMixture
from sklearn.multioutput import ClassifierChain, MultiOutputClassifier, MultiOutputRegressor
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

import sealserve
from tests.support.bundles import Workspace, serve_bundles
from tests.support.kinds import Expected, expected_answers, same
from tests.support.server import SEALSERVE

VERSION = "1.0.0"
FEATURES = ["a", "b", "c"]
ARROW = "application/vnd.apache.arrow.stream"


@dataclass(frozen=True)
class Case:
    estimator: Any
    task: str
    targets: tuple[str, ...] = ()
    cli: bool = False


@dataclass
class Served:
    http: httpx.Client
    grpc: grpcclient.InferenceServerClient
    rows: np.ndarray
    cases: dict[str, Case] = field(default_factory=dict)


def training() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 3))
    X[:4] *= 6  # a few far rows, so detectors see outliers and clusters differ
    regression = np.column_stack([2 * X[:, 0] + X[:, 1], X[:, 2] - X[:, 0]])
    classes = np.column_stack([(X[:, 0] > 0).astype(int), (X[:, 1] + X[:, 2] > 0).astype(int)])
    return X, regression, classes


def cases() -> dict[str, Case]:
    X, regression, classes = training()
    return {
        "multi_ridge": Case(MultiOutputRegressor(Ridge()).fit(X, regression), "multi_output", ("y1", "y2"), cli=True),
        "forest_2d": Case(
            RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, regression), "multi_output", ("p", "q")
        ),
        "multi_logistic": Case(MultiOutputClassifier(LogisticRegression()).fit(X, classes), "multi_output", ("up", "big")),
        "chain": Case(
            ClassifierChain(LogisticRegression(), random_state=0).fit(X, classes), "multi_output", ("target_0", "target_1"), True
        ),
        "kmeans": Case(KMeans(n_clusters=3, n_init=2, random_state=0).fit(X), "clustering"),
        "mixture": Case(GaussianMixture(n_components=2, random_state=0).fit(X), "clustering"),
        "isolation": Case(IsolationForest(n_estimators=20, random_state=0).fit(X), "outlier_detection"),
        "lof": Case(LocalOutlierFactor(n_neighbors=10, novelty=True).fit(X), "outlier_detection"),
        "one_class_svm": Case(OneClassSVM(gamma=0.3).fit(X), "outlier_detection"),
    }


def pack_from_cli(root: Path, name: str, case: Case, X: np.ndarray) -> Path:
    skops.io.dump(case.estimator, root / f"{name}.skops")
    frame = pd.DataFrame(X, columns=FEATURES)
    for index, target in enumerate(case.targets):
        frame[target] = case.estimator.predict(X)[:, index]
    frame.to_csv(root / f"{name}.csv", index=False)
    command = [SEALSERVE, "pack", f"{name}.skops", "--name", name, "--version", VERSION, "--private-key", "signing-key.pem"]
    command += ["--out", f"{name}.zip", "--sample", f"{name}.csv"]
    for target in case.targets:
        command += ["--target", target]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False, timeout=180)
    assert result.returncode == 0, result.stderr
    return root / f"{name}.zip"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("kinds")
    space = Workspace.create(root)
    X, _, _ = training()
    sample = pd.DataFrame(X, columns=FEATURES)
    models = cases()
    bundles = {
        name: pack_from_cli(root, name, case, X)
        if case.cli
        else sealserve.pack(
            case.estimator, name=name, version=VERSION, private_key=space.key, out=root / name, sample=sample, targets=case.targets
        )
        for name, case in models.items()
    }
    with serve_bundles(space, bundles, root) as (http, grpc):
        yield Served(http, grpc, np.vstack([X[:6], [[9.0, -9.0, 9.0]], np.zeros((1, 3))]), models)


def expected(case: Case, rows: np.ndarray) -> Expected:
    return expected_answers(case.estimator, case.task, list(case.targets), rows)


def records(rows: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, row, strict=True)) for row in rows.tolist()]


NAMES = list(cases())


def test_each_kind_is_packed_with_its_own_task(served: Served) -> None:
    for name, case in served.cases.items():
        detail = served.http.get(f"/api/models/{name}").json()
        assert detail["ready"], detail
        metadata = detail["metadata"]
        assert (metadata["output"]["task"], metadata["schema_version"]) == (case.task, 2), name
        assert [target["name"] for target in metadata["output"].get("targets", [])] == list(case.targets), name
    page = served.http.get("/ui/models/forest_2d")
    assert page.status_code == 200
    assert "multi_output: p, q" in page.text
    contract = served.http.get("/openapi.json")
    assert contract.status_code == 200
    assert list(contract.json()["components"]["schemas"]["Forest2dOutputTargets"]["properties"]) == ["p", "q"]


@pytest.mark.parametrize("name", NAMES)
def test_native_single_and_batch_answer_what_the_estimator_answers(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    native = expected(case, rows).native
    singles = []
    for record in records(rows):
        response = served.http.post(f"/api/models/{name}/prediction", json=record)
        assert response.status_code == 200, response.text
        singles.append(response.json()["output"])
    same(singles, native, "native single")
    batch = served.http.post(f"/api/models/{name}/predictions", json=records(rows))
    assert batch.status_code == 200, batch.text
    same(batch.json()["outputs"], native, "native batch")


@pytest.mark.parametrize("name", NAMES)
def test_the_batch_route_answers_columns_and_arrow_as_it_answers_records(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    native = expected(case, rows).native
    split = served.http.post(f"/api/models/{name}/predictions", json={"dataframe_split": {"columns": FEATURES, "data": rows.tolist()}})
    assert split.status_code == 200, split.text
    same(split.json()["outputs"], native, "dataframe_split")
    sink = pa.BufferOutputStream()
    table = pa.table({feature: rows[:, index] for index, feature in enumerate(FEATURES)})
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    arrow = served.http.post(
        f"/api/models/{name}/predictions",
        content=sink.getvalue().to_pybytes(),
        headers={"content-type": ARROW, "accept": ARROW},
    )
    assert arrow.status_code == 200, arrow.text
    answer = ipc.open_stream(pa.py_buffer(arrow.content)).read_all().to_pydict()
    if case.task == "outlier_detection":
        same(
            [{"is_outlier": flag, "score": score} for flag, score in zip(answer["is_outlier"], answer["score"], strict=True)],
            native,
            "arrow",
        )
    elif case.task == "multi_output":
        answered: list[dict[str, Any]] = [
            {"prediction": {target: answer[target][row] for target in case.targets}} for row in range(len(rows))
        ]
        for index, (row, item) in enumerate(zip(answered, native, strict=True)):
            if "probabilities" in item:  # probability_<target>_<class> columns
                row["probabilities"] = {
                    target: {label: answer[f"probability_{target}_{label}"][index] for label in chances}
                    for target, chances in item["probabilities"].items()
                }
        same(answered, native, "arrow")
    else:
        assert answer["predict"] == [item["prediction"] for item in native], name
        if "probabilities" in native[0]:
            for label in native[0]["probabilities"]:
                assert answer[f"probability_{label}"] == pytest.approx([item["probabilities"][label] for item in native], abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_kserve_v1_answers_one_value_per_row(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    response = served.http.post(f"/v1/models/{name}:predict", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    same(response.json()["predictions"], expected(case, rows).v1, "V1")


@pytest.mark.parametrize("name", NAMES)
def test_v2_rest_and_grpc_answer_named_outputs_in_their_shapes(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    outputs_expected = expected(case, rows).v2
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    response = served.http.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert sorted(outputs) == sorted(outputs_expected)
    for output_name, (datatype, shape, data) in outputs_expected.items():
        assert (outputs[output_name]["datatype"], outputs[output_name]["shape"]) == (datatype, shape), output_name
        same(outputs[output_name]["data"], data, f"V2 REST {output_name}")

    tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(np.ascontiguousarray(rows))
    result = served.grpc.infer(name, [tensor])
    for output_name, (datatype, shape, data) in outputs_expected.items():
        assert (result.get_output(output_name).datatype, list(result.get_output(output_name).shape)) == (datatype, shape), output_name
        array = result.as_numpy(output_name)
        assert list(array.shape) == shape
        same(array.ravel().tolist(), data, f"V2 gRPC {output_name}")


@pytest.mark.parametrize("name", ["multi_logistic", "chain"])
def test_a_multi_output_classifier_answers_each_targets_probabilities_on_request(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    native = expected(case, rows).native
    requested = [f"predict_proba_{target}" for target in case.targets]
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    answer = served.http.post(f"/v2/models/{name}/infer", json=body | {"outputs": [{"name": output} for output in requested]})
    assert answer.status_code == 200, answer.text
    tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(np.ascontiguousarray(rows))
    result = served.grpc.infer(name, [tensor], outputs=[grpcclient.InferRequestedOutput(output) for output in requested])
    for output, target in zip(answer.json()["outputs"], case.targets, strict=True):
        chances = [value for item in native for value in item["probabilities"][target].values()]
        assert (output["name"], output["datatype"], output["shape"]) == (f"predict_proba_{target}", "FP64", [len(rows), 2])
        same(output["data"], chances, f"V2 REST {output['name']}")
        same(result.as_numpy(output["name"]).ravel().tolist(), chances, f"V2 gRPC {output['name']}")


def test_a_multi_output_model_answers_one_target_on_request_and_refuses_an_unknown_one(served: Served) -> None:
    case, rows = served.cases["forest_2d"], served.rows
    body: dict[str, Any] = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    answer = served.http.post("/v2/models/forest_2d/infer", json=body | {"outputs": [{"name": "q"}]})
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert (output["name"], output["shape"]) == ("q", [len(rows)])
    same(output["data"], [row[1] for row in expected(case, rows).v1], "target q")

    unknown = served.http.post("/v2/models/forest_2d/infer", json=body | {"outputs": [{"name": "r"}]})
    assert unknown.status_code == 400
    assert "unknown output 'r'; the model's outputs are predict, p, q" in unknown.json()["error"]

    metadata = served.http.get("/v2/models/forest_2d").json()
    assert [(item["name"], item["shape"]) for item in metadata["outputs"]] == [("predict", [-1, 2]), ("p", [-1]), ("q", [-1])]


@pytest.mark.parametrize("name", NAMES)
def test_seldon_answers_named_columns(served: Served, name: str) -> None:
    case, rows = served.cases[name], served.rows
    data = served.http.post(f"/seldon/default/{name}/api/v1.0/predictions", json={"data": {"ndarray": rows.tolist()}}).json()["data"]
    names, values = expected(case, rows).seldon
    assert data["names"] == names
    same(data["ndarray"], values, "Seldon")


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_names_the_field(served: Served, name: str) -> None:
    rows = served.rows
    wide = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [len(rows), 4], "data": [0.0] * (len(rows) * 4)}]}
    answer = served.http.post(f"/v2/models/{name}/infer", json=wide)
    assert answer.status_code == 400
    assert "input 'input-0' has shape [8, 4]; expected [N, 3]" in answer.json()["error"]

    missing = served.http.post(f"/api/models/{name}/prediction", json={"a": 1.0, "b": 2.0})
    assert missing.status_code == 422
    assert [detail["loc"] for detail in missing.json()["error"]["details"]] == [["c"]], json.dumps(missing.json())

    unknown = served.http.post(f"/api/models/{name}/prediction", json={"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0})
    assert unknown.status_code == 422
    assert [detail["loc"] for detail in unknown.json()["error"]["details"]] == [["d"]], json.dumps(unknown.json())


def test_a_multi_output_model_refuses_a_row_of_the_wrong_length_on_v1_and_seldon(served: Served) -> None:
    v1 = served.http.post("/v1/models/forest_2d:predict", json={"instances": [[1.0, 2.0]]})
    assert v1.status_code == 400
    assert v1.json()["error"] == "instance 0 has 2 values; expected 3 values in the order a, b, c, or an object keyed by feature name"
    seldon = served.http.post(
        "/seldon/default/forest_2d/api/v1.0/predictions", json={"data": {"names": ["a", "b", "e"], "ndarray": [[1, 2, 3]]}}
    )
    assert seldon.status_code == 400
    assert "unknown input 'e'" in seldon.json()["status"]["info"]


def test_the_cli_refuses_a_clusterer_without_predict_and_too_few_targets_saying_why(tmp_path: Path) -> None:
    from sklearn.cluster import DBSCAN

    Workspace.create(tmp_path)
    X, regression, _ = training()
    skops.io.dump(DBSCAN().fit(X), tmp_path / "dbscan.skops")
    skops.io.dump(MultiOutputRegressor(Ridge()).fit(X, regression), tmp_path / "multi.skops")
    frame = pd.DataFrame(X, columns=FEATURES)
    frame.to_csv(tmp_path / "features.csv", index=False)
    frame.assign(y1=regression[:, 0]).to_csv(tmp_path / "one_target.csv", index=False)
    base = ["--version", VERSION, "--private-key", "signing-key.pem"]
    refusals = {
        "dbscan": (["dbscan.skops", "--sample", "features.csv"], "error (BundleFormatError): DBSCAN has no predict method"),
        "multi": (
            ["multi.skops", "--sample", "one_target.csv", "--target", "y1"],
            "error (BundleFormatError): the model predicts 2 targets per row, but 1 were named (y1)",
        ),
    }
    for name, (arguments, message) in refusals.items():
        command = [SEALSERVE, "pack", *arguments, "--name", name, *base, "--out", f"{name}.zip"]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=180)
        assert result.returncode == 1, result.stderr
        assert message in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / f"{name}.zip").exists()
