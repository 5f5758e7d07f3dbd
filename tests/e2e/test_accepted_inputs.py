"""Inputs the model itself accepts are accepted by the server: an unseen category reaches an encoder that ignores it, a
null reaches an imputer or a model that handles missing values, while an encoder that refuses unseen categories
still gets a 422 naming the field."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import sealserve
from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve

VERSION = "1.0.0"
KNOWN = {"city": "Lyon", "age": 41, "income": 52.5}


def training() -> tuple[pd.DataFrame, pd.Series]:
    """No missing value and three cities: nothing in the sample itself opens a column."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"city": rng.choice(["Lyon", "Paris", "Nice"], 160), "age": rng.integers(18, 80, 160), "income": rng.normal(50, 12, 160).round(1)}
    )
    return frame, ((frame.age > 45) ^ (frame.city == "Nice")).astype(int)


def encoded(encoder: Any, numbers: Any) -> ColumnTransformer:
    return ColumnTransformer([("city", encoder, ["city"]), ("numbers", numbers, ["age", "income"])])


def models() -> dict[str, Any]:
    import xgboost

    return {
        "ignoring": make_pipeline(
            encoded(OneHotEncoder(handle_unknown="ignore"), make_pipeline(SimpleImputer(), StandardScaler())), LogisticRegression()
        ),
        "refusing": make_pipeline(encoded(OneHotEncoder(handle_unknown="error"), StandardScaler()), LogisticRegression()),
        "ordinal_hgb": make_pipeline(
            encoded(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), "passthrough"),
            HistGradientBoostingClassifier(max_iter=20, random_state=0),
        ),
        "xgb": xgboost.XGBClassifier(n_estimators=10, max_depth=3),
    }


@dataclass(frozen=True)
class Served:
    server: RunningServer
    fitted: dict[str, Any]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("accepted")
    space = Workspace.create(root)
    (root / "bundles").mkdir()
    frame, target = training()
    fitted = {}
    for name, model in models().items():
        sample = frame[["age", "income"]] if name == "xgb" else frame
        fitted[name] = model.fit(sample.to_numpy(dtype="float64") if name == "xgb" else sample, target)
        bundle = sealserve.pack(
            fitted[name], name=name, version=VERSION, private_key=space.key, out=root / "bundles" / f"{name}.zip", sample=sample
        )
        space.store.push(bundle)
        space.store.promote(name, VERSION, "production")
    config = space.config(root / "service.yaml", *({"name": name, "runtime": "reference"} for name in fitted))
    with serve(config, root) as server:
        yield Served(server, fitted)


def answer(served: Served, name: str, record: dict[str, Any]) -> httpx.Response:
    with served.server.client() as client:
        return client.post(f"/api/models/{name}/prediction", json=record)


def expected(served: Served, name: str, record: dict[str, Any]) -> tuple[Any, list[float]]:
    model = served.fitted[name]
    if name == "xgb":
        row: Any = np.array([[math.nan if record.get(key) is None else record[key] for key in ("age", "income")]])
    else:
        row = pd.DataFrame([{key: record.get(key, math.nan) if record.get(key) is not None else math.nan for key in KNOWN}])
        row["city"] = row["city"].astype(object)
    return model.predict(row).tolist()[0], model.predict_proba(row)[0].tolist()


def assert_answers_like_the_model(served: Served, name: str, record: dict[str, Any]) -> None:
    response = answer(served, name, record)
    assert response.status_code == 200, response.text
    prediction, probabilities = expected(served, name, record)
    output = response.json()["output"]
    assert output["prediction"] == prediction
    assert list(output["probabilities"].values()) == pytest.approx(probabilities, abs=1e-9)


@pytest.mark.parametrize("name", ["ignoring", "ordinal_hgb"])
def test_an_unseen_category_is_answered_when_the_encoder_takes_it(served: Served, name: str) -> None:
    assert_answers_like_the_model(served, name, {**KNOWN, "city": "Grenoble"})


@pytest.mark.parametrize(("name", "field"), [("ignoring", "income"), ("ordinal_hgb", "age"), ("ordinal_hgb", "city")])
def test_null_is_answered_when_an_imputer_or_the_model_handles_it(served: Served, name: str, field: str) -> None:
    assert_answers_like_the_model(served, name, {**KNOWN, field: None})


def test_a_booster_answers_null_and_absent_features(served: Served) -> None:
    assert_answers_like_the_model(served, "xgb", {"age": None, "income": 40.0})
    assert_answers_like_the_model(served, "xgb", {"age": 30})


def test_an_encoder_that_refuses_unseen_categories_still_gets_a_422_naming_the_field(served: Served) -> None:
    assert_answers_like_the_model(served, "refusing", KNOWN)
    response = answer(served, "refusing", {**KNOWN, "city": "Grenoble"})
    assert response.status_code == 422, response.text
    assert "city" in response.text
    nothing_imputes = answer(served, "refusing", {**KNOWN, "income": None})
    assert nothing_imputes.status_code == 422, nothing_imputes.text
    assert "income" in nothing_imputes.text


def test_kserve_v1_takes_the_same_inputs(served: Served) -> None:
    instances = [{**KNOWN, "city": "Grenoble"}, {**KNOWN, "income": None}]
    with served.server.client() as client:
        response = client.post("/v1/models/ignoring:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [expected(served, "ignoring", instance)[0] for instance in instances]
