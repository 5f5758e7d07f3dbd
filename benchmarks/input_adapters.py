"""Per-row cost of building a model's input in each shape it can be fitted on (rows, frame, records, text).

Usage: .venv/bin/python benchmarks/input_adapters.py
Times `InputAdapter.from_records` on validated records, for one record and a batch of 1,000, next to the
estimator's own predict on that input, so the adapter's share of a prediction is visible.
"""

from __future__ import annotations

import timeit
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sealserve.bundle.schema import derive_features, input_model, text_feature
from sealserve.runtime.inputs import InputAdapter, detect_input_shape

ROWS = 1000


def best_us(call: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def tabular(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, ROWS),
            "hours": rng.uniform(10, 60, ROWS),
            "workclass": rng.choice(["private", "gov", "self"], ROWS),
            "education": rng.choice(["hs", "college", "masters", "phd"], ROWS),
        }
    )
    return frame, ((frame.age > 40) & (frame.workclass != "gov")).to_numpy(dtype=int)


def models(rng: np.random.Generator) -> dict[str, tuple[Any, pd.DataFrame]]:
    frame, target = tabular(rng)
    numeric = frame[["age", "hours"]].astype("float64")
    census = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass", "education"]), ("num", StandardScaler(), ["age", "hours"])]
    )
    text = pd.DataFrame({"review": rng.choice(["good plot", "bad acting", "great film", "awful script", "fine cast"], ROWS)})
    return {
        "rows (numpy)": (LogisticRegression().fit(numeric.to_numpy(), target), numeric),
        "frame (ColumnTransformer)": (make_pipeline(census, LogisticRegression()).fit(frame, target), frame),
        "records (DictVectorizer)": (
            make_pipeline(DictVectorizer(), RandomForestClassifier(n_estimators=10, random_state=0)).fit(frame.to_dict("records"), target),
            frame,
        ),
        "text (TfidfVectorizer)": (make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(text.review, target), text),
    }


def measure(model: Any, sample: pd.DataFrame) -> tuple[float, float, float]:
    """Microseconds: one record, per row of a 1,000-record batch, and the model's own predict on one row."""
    shape = detect_input_shape(model)
    features = text_feature(sample) if shape.value == "text" else derive_features(sample)
    adapter = InputAdapter(features, shape)
    schema = input_model("bench", features)
    records = [schema.model_validate(record) for record in sample.to_dict("records")]
    one = records[:1]
    model_input = adapter.from_records(one)
    return (
        best_us(lambda: adapter.from_records(one), 2000),
        best_us(lambda: adapter.from_records(records), 20) / len(records),
        best_us(lambda: model.predict(model_input), 200),
    )


def main() -> None:
    warnings.simplefilter("ignore")
    print(f"{'input shape':28s} {'1 record µs':>12s} {'1,000 µs/row':>13s} {'predict, 1 row µs':>18s}")
    for name, (model, sample) in models(np.random.default_rng(0)).items():
        single, batch, predict = measure(model, sample)
        print(f"{name:28s} {single:12.1f} {batch:13.2f} {predict:18.1f}")


if __name__ == "__main__":
    main()
