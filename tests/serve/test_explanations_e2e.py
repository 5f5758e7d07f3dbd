"""Explanations on the real server: KServe V1 `:explain` and the native `/explanation(s)` routes, with auth on and
`explain.scope: explain`, so they share the prediction's validation, limits, scope checks, metrics and access log.

One server for the module (its tests only read from it): a gradient-boosting pipeline served by scikit-learn, a
logistic-regression pipeline served from its compiled ONNX form (explained by its reference model, loaded on the first
explanation), a kNN pipeline packed with a background sample, and the same kNN without one.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import sealserve
from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve, wait_until

KEYS = {  # name → (key, scopes)
    "full": (f"ssk_{secrets.token_urlsafe(32)}", ["predict", "explain", "read"]),
    "predict-only": (f"ssk_{secrets.token_urlsafe(32)}", ["predict", "read"]),
    "explain-income": (f"ssk_{secrets.token_urlsafe(32)}", ["explain:income"]),
}
MAX_EVALUATIONS = 90
FEATURES = ["age", "city", "job", "hours"]


def training(rows: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(1)
    data = pd.DataFrame(
        {
            "age": rng.uniform(20, 70, rows),
            "city": rng.choice(["paris", "rome", "oslo"], rows),
            "job": rng.choice(["clerk", "nurse", "chef"], rows),
            "hours": rng.integers(10, 60, rows).astype(float),
        }
    )
    label = ((data["age"] / 10 + (data["city"] == "rome") * 2 + rng.normal(0, 1, rows)) > 5).map({True: "high", False: "low"})
    return data, label


def pipeline(last: Any) -> Pipeline:
    columns = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "job"]), ("num", StandardScaler(), ["age", "hours"])]
    )
    data, label = training()
    return make_pipeline(columns, last).fit(data, label)


@dataclass
class Served:
    server: RunningServer
    models: dict[str, Pipeline]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    space = Workspace.create(tmp_path_factory.mktemp("explain"))
    data, _ = training()
    models = {
        "income": pipeline(GradientBoostingClassifier(n_estimators=30, random_state=0)),
        "risk": pipeline(LogisticRegression(max_iter=500)),
        "neighbours": pipeline(KNeighborsClassifier(7)),
    }
    bundles = {name: {"model": model} for name, model in models.items()}
    bundles["neighbours"]["background"] = 20
    bundles["bare"] = {"model": models["neighbours"]}
    for name, options in bundles.items():
        out = space.root / f"{name}.zip"
        sealserve.pack(name=name, version="1.0.0", private_key=space.key, out=out, sample=data, **options)
        space.store.push(out)
        space.store.promote(name, "1.0.0", "production")
    keys = [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": scopes} for name, (key, scopes) in KEYS.items()]
    config = space.config(
        space.root / "service.yaml",
        *({"name": name} for name in bundles),
        auth={"enabled": True, "api_keys": keys},
        explain={"scope": "explain", "max_evaluations": MAX_EVALUATIONS},
        limits={"max_batch_size": 20},
    )
    with serve(config, space.root) as server:
        yield Served(server, models)
        assert "Traceback" not in server.log(), server.log()


def post(served: Served, path: str, body: Any, key: str = "full", query: str = "") -> httpx.Response:
    with served.server.client() as client:
        return client.post(f"{path}{query}", json=body, headers={"X-API-Key": KEYS[key][0]})


def record(index: int = 0) -> dict[str, Any]:
    return training()[0].iloc[index].to_dict()


def test_a_native_explanation_adds_up_to_the_models_log_odds(served: Served) -> None:
    response = post(served, "/api/models/income/explanation", record(), query="?top=2")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("income", "1.0.0")
    answer = body["explanation"]
    assert (answer["method"], answer["output"]) == ("tree_shap", "log_odds")
    assert list(answer["contributions"]) == FEATURES  # city and job: their one-hot columns summed back
    model, row = served.models["income"], pd.DataFrame([record()])
    log_odds = float(model.decision_function(row)[0])  # of classes_[1]
    explained = model.classes_[1] if log_odds > 0 else model.classes_[0]
    assert answer["explains"] == model.predict(row)[0] == explained
    expected = log_odds if explained == model.classes_[1] else -log_odds
    assert answer["base_value"] + sum(answer["contributions"].values()) == pytest.approx(expected, abs=1e-6)
    assert answer["value"] == pytest.approx(expected, abs=1e-6)
    assert [reason["value"] for reason in answer["top"]] == [record()[reason["feature"]] for reason in answer["top"]]
    assert len(answer["top"]) == 2


def test_a_compiled_model_is_explained_by_its_reference_loaded_on_demand(served: Served) -> None:
    with served.server.client() as client:
        detail = client.get("/api/models/risk", headers={"X-API-Key": KEYS["full"][0]}).json()
    assert detail["runtime"] == "onnxruntime"
    answer = post(served, "/api/models/risk/explanation", record(3), query="?class=high").json()["explanation"]
    assert (answer["method"], answer["output"], answer["explains"]) == ("linear", "log_odds", "high")
    model = served.models["risk"]
    assert list(model.classes_) == ["high", "low"]  # the log-odds of "high" are the negated decision function
    assert answer["value"] == pytest.approx(-float(model.decision_function(pd.DataFrame([record(3)]))[0]), abs=1e-6)
    wait_until(lambda: "model risk 1.0.0: explainer ready" in served.server.log(), timeout=10)
    assert "reference model loaded in" in served.server.log()
    with served.server.client() as client:
        explanation = client.get("/api/models/risk", headers={"X-API-Key": KEYS["full"][0]}).json()["explanation"]
    assert explanation["method"] == "exact"
    assert explanation["reference_load_seconds"] > 0
    assert explanation["kept_bytes"] > 1000  # the reference model's verified skops file, kept since the model loaded


def test_a_batch_of_explanations_in_each_shape_the_prediction_route_takes(served: Served) -> None:
    records = [record(index) for index in range(3)]
    as_records = post(served, "/api/models/income/explanations", records)
    split = {"dataframe_split": {"columns": FEATURES, "data": [[item[name] for name in FEATURES] for item in records]}}
    as_columns = post(served, "/api/models/income/explanations", split)
    assert as_records.status_code == as_columns.status_code == 200, as_records.text
    first, second = as_records.json()["explanations"], as_columns.json()["explanations"]
    assert len(first) == 3
    for one, other in zip(first, second, strict=True):
        assert one["contributions"] == pytest.approx(other["contributions"], abs=1e-9)


def test_kserve_v1_explain_is_the_protocols_verb(served: Served) -> None:
    response = post(served, "/v1/models/income:explain", {"instances": [record(0), record(1)]}, query="?class=all")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "income"
    assert len(body["explanations"]) == 2
    assert [part["explains"] for part in body["explanations"][0]["explanations"]] == ["high", "low"]


@pytest.mark.parametrize(
    ("predict", "explain", "body"),
    [
        ("/api/models/income/prediction", "/api/models/income/explanation", {**record(), "age": "old"}),
        ("/api/models/income/predictions", "/api/models/income/explanations", [record()] * 21),
        ("/v1/models/income:predict", "/v1/models/income:explain", {"instances": [{**record(), "city": None}]}),
        ("/v1/models/nothing:predict", "/v1/models/nothing:explain", {"instances": [record()]}),
    ],
    ids=["bad-field", "over-batch-limit", "kserve-null", "unknown-model"],
)
def test_bad_input_gets_the_prediction_routes_answer(served: Served, predict: str, explain: str, body: Any) -> None:
    predicted, explained = post(served, predict, body), post(served, explain, body)
    assert explained.status_code == predicted.status_code
    assert explained.status_code in (404, 413, 400, 422)
    assert explained.json() == predicted.json()


def test_a_model_without_a_method_answers_422_naming_the_background(served: Served) -> None:
    native = post(served, "/api/models/bare/explanation", record())
    assert native.status_code == 422
    assert native.json()["error"]["code"] == "no_explanation_method"
    assert "--background N" in native.json()["error"]["message"]
    kserve = post(served, "/v1/models/bare:explain", {"instances": [record()]})  # the standard protocols answer 400, not 422
    assert kserve.status_code == 400
    assert "KNeighborsClassifier has no exact explanation method" in kserve.json()["error"]
    assert post(served, "/api/models/bare/prediction", record()).status_code == 200  # it still predicts


def test_the_model_agnostic_method_answers_within_its_budget(served: Served) -> None:
    response = post(served, "/api/models/neighbours/explanations", [record(0), record(1)], query="?class=all")
    assert response.status_code == 200, response.text
    answers = response.json()["explanations"]
    probabilities = served.models["neighbours"].predict_proba(pd.DataFrame([record(0), record(1)]))
    for answer, row in zip(answers, probabilities, strict=True):
        assert answer["method"] == "permutation"
        assert answer["output"] == "probability"
        assert 0 < answer["evaluations"] <= MAX_EVALUATIONS // 2
        assert [part["value"] for part in answer["explanations"]] == pytest.approx(list(row), abs=1e-9)
    too_many = post(served, "/api/models/neighbours/explanations", [record()] * 20)  # 20 rows need 20 walks of 5: over 90
    assert too_many.status_code == 422
    assert "explain.max_evaluations is 90" in too_many.json()["error"]["message"]


def test_explanations_need_the_explain_scope_when_configured(served: Served) -> None:
    assert post(served, "/api/models/income/prediction", record(), key="predict-only").status_code == 200  # live control
    refused = post(served, "/api/models/income/explanation", record(), key="predict-only")
    assert refused.status_code == 403
    assert "explain" in refused.json()["error"]["message"]
    assert post(served, "/v1/models/income:explain", {"instances": [record()]}, key="explain-income").status_code == 200
    other = post(served, "/v1/models/risk:explain", {"instances": [record()]}, key="explain-income")
    assert other.status_code == 403
    assert "explain:risk" in other.json()["error"]
    assert post(served, "/api/models/income/prediction", record(), key="explain-income").status_code == 403


def test_explanations_are_counted_and_logged_like_predictions(served: Served) -> None:
    assert post(served, "/api/models/income/explanation", record()).status_code == 200
    with served.server.client() as client:
        metrics = client.get("/metrics", headers={"X-API-Key": KEYS["full"][0]}).text
    assert 'sealserve_requests_total{model="income",protocol="native",status_class="2xx",version="1.0.0"}' in metrics
    wait_until(lambda: "/api/models/income/explanation" in served.server.log(), timeout=10)


def test_the_model_page_shows_global_importance_from_recent_rows(served: Served) -> None:
    records = [record(index) for index in range(10)]
    assert post(served, "/api/models/income/predictions", records).status_code == 200  # the drift window's rows
    assert post(served, "/api/models/bare/predictions", records).status_code == 200
    with served.server.client() as client:
        page = client.get("/ui/models/income", headers={"X-API-Key": KEYS["full"][0]}).text
        bare = client.get("/ui/models/bare", headers={"X-API-Key": KEYS["full"][0]}).text
    assert "Global importance" in page
    assert "Mean |contribution| (log-odds, tree shap)" in page
    assert all(f"<title>{name}</title>" in page for name in FEATURES)
    assert "Global importance" not in bare  # no exact method: the page runs no model-agnostic explanation
