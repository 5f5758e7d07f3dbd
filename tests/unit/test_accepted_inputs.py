"""Which columns `pack` opens because the model accepts unseen categories or missing values, and which it leaves alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from sealserve.bundle import keys
from sealserve.bundle.metadata import BundleMetadata
from sealserve.packing.build import pack


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame({"city": rng.choice(["a", "b", "c", "d"], 80), "age": rng.integers(18, 80, 80), "income": rng.normal(50, 9, 80)})


def opened(model: Any, sample: pd.DataFrame, tmp_path: Path, **options: Any) -> dict[str, tuple[bool, bool]]:
    """{feature: (nullable, allow_unknown)} of the packed bundle."""
    fit_on = sample if "city" in sample.columns else sample.to_numpy(dtype="float64")
    model.fit(fit_on, sample["age"] * 2.0 + 1)
    key = keys.generate(keys.Algorithm.ECDSA_P256, "unit")
    out = pack(model, name="m", version="1.0.0", private_key=key, out=tmp_path / "b", sample=sample, compiled=False, **options)
    metadata = BundleMetadata.model_validate_json((out / "sealserve.json").read_text())
    return {feature.name: (feature.nullable, feature.allow_unknown) for feature in metadata.features}


def columns(city: Any, numbers: Any) -> ColumnTransformer:
    return ColumnTransformer([("city", city, ["city"]), ("numbers", numbers, ["age", "income"])])


@pytest.mark.parametrize("handle_unknown", [{"handle_unknown": "ignore"}, {"handle_unknown": "infrequent_if_exist", "min_frequency": 5}])
def test_a_one_hot_encoder_that_ignores_unseen_categories_opens_its_column(
    frame: pd.DataFrame, tmp_path: Path, handle_unknown: Any
) -> None:
    model = make_pipeline(columns(OneHotEncoder(**handle_unknown), StandardScaler()), LinearRegression())
    assert opened(model, frame, tmp_path) == {"city": (False, True), "age": (False, False), "income": (False, False)}


def test_an_encoder_that_refuses_unseen_categories_leaves_the_column_closed(frame: pd.DataFrame, tmp_path: Path) -> None:
    model = make_pipeline(columns(OneHotEncoder(), StandardScaler()), LinearRegression())
    assert opened(model, frame, tmp_path) == {"city": (False, False), "age": (False, False), "income": (False, False)}


def test_an_imputer_opens_exactly_the_columns_it_receives(frame: pd.DataFrame, tmp_path: Path) -> None:
    city = make_pipeline(SimpleImputer(strategy="most_frequent"), OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
    model = make_pipeline(
        ColumnTransformer([("city", city, ["city"]), ("age", KNNImputer(), ["age"]), ("income", StandardScaler(), ["income"])]),
        LinearRegression(),
    )
    assert opened(model, frame, tmp_path) == {"city": (True, True), "age": (True, False), "income": (False, False)}


@pytest.mark.parametrize("imputer", [SimpleImputer(), KNNImputer(), IterativeImputer(max_iter=3)])
def test_every_imputer_at_the_head_of_a_pipeline_makes_every_column_nullable(frame: pd.DataFrame, tmp_path: Path, imputer: Any) -> None:
    numbers = frame[["age", "income"]]
    assert opened(make_pipeline(imputer, LinearRegression()), numbers, tmp_path) == {"age": (True, False), "income": (True, False)}


def test_an_imputer_of_another_marker_than_nan_opens_nothing(frame: pd.DataFrame, tmp_path: Path) -> None:
    model = make_pipeline(SimpleImputer(missing_values=-1.0), LinearRegression())
    assert opened(model, frame[["age", "income"]], tmp_path) == {"age": (False, False), "income": (False, False)}


@pytest.mark.parametrize(
    ("model", "nullable"),
    [
        (HistGradientBoostingRegressor(max_iter=5), True),
        (make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=5)), True),
        (make_pipeline(StandardScaler(), LinearRegression()), False),
        (LinearRegression(), False),
    ],
)
def test_a_model_that_handles_missing_values_makes_its_columns_nullable_through_steps_that_pass_them(
    frame: pd.DataFrame, tmp_path: Path, model: Any, nullable: bool
) -> None:
    assert opened(model, frame[["age", "income"]], tmp_path) == {"age": (nullable, False), "income": (nullable, False)}


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosters_take_missing_values(frame: pd.DataFrame, tmp_path: Path, library: str) -> None:
    if library == "xgboost":
        import xgboost

        model: Any = xgboost.XGBRegressor(n_estimators=5)
    else:
        import lightgbm

        model = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1)
    assert opened(model, frame[["age", "income"]], tmp_path) == {"age": (True, False), "income": (True, False)}


def test_the_users_features_override_wins_per_key(frame: pd.DataFrame, tmp_path: Path) -> None:
    model = make_pipeline(columns(OneHotEncoder(handle_unknown="ignore"), SimpleImputer()), LinearRegression())
    overrides = {"city": {"allow_unknown": False}, "age": {"nullable": False}}
    assert opened(model, frame, tmp_path, features=overrides) == {"city": (False, False), "age": (False, False), "income": (True, False)}
