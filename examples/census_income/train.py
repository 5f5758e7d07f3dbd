"""Train the census income models on the UCI Adult data (seeds 001 and 003).

Two models answer "does this person earn more than $50K a year?":

- ``census_income``: a pandas DataFrame in, a ``ColumnTransformer`` selecting columns by name
  (constant imputation + one-hot encoding on the categories, scaling on the numbers), then logistic
  regression or gradient boosting, whichever cross-validates better. It predicts the labels ``">50K"`` /
  ``"<=50K"`` themselves.
- ``census_dict``: dict records in, ``DictVectorizer`` + random forest, fitted on a 0/1 target;
  the bundle's class labels decode 0/1 to the same two labels, and clients read the probability of ``">50K"``.

Both are fitted on ``adult.data`` (split ``train``) and scored on ``adult.test`` (split ``test``), UCI's own
split; the models served are the ones scored. Reports go to ``<out>/reports/<model>/``.

Usage::

    python examples/census_income/train.py --out build/census [--fast]

Packing and signing are done by the caller (see ``publish.py``).
"""

from __future__ import annotations

import argparse
import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.base import ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

DATA_PATH = Path(__file__).resolve().parent / "data" / "adult.csv.gz"
NUMERIC: tuple[str, ...] = ("age", "capital_gain", "capital_loss", "hours_per_week")
CATEGORICAL: tuple[str, ...] = ("workclass", "education", "marital_status", "occupation", "relationship", "native_country")
#: The inputs, in the data's column order. Not used: fnlwgt (a survey weight, not a trait of the person),
#: education_num (education's rank: the same information), race and sex (protected attributes; see README).
FEATURES: tuple[str, ...] = (
    "age",
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
)
TARGET = "income"
POSITIVE, NEGATIVE = ">50K", "<=50K"
DICT_CLASS_LABELS: dict[int, str] = {0: NEGATIVE, 1: POSITIVE}
MISSING = "Unknown"  # what the imputer calls a missing category ('?' in the UCI files, null or absent in requests)
FAST_COMPARE_ROWS = 6000
CV_SCORING = {"accuracy": "accuracy", "roc_auc": "roc_auc", "f1": "f1"}

Estimator = Any  # a fitted scikit-learn pipeline


@dataclass(frozen=True)
class TrainedModel:
    """One fitted model with what `sealserve.pack` needs next to it."""

    model: Estimator
    """The pipeline fitted on the train split (the one scored on the test split)."""
    sample: pd.DataFrame
    """The training features, for the bundle's schema and drift statistics (NaN where the data had '?')."""
    metrics: dict[str, float]
    """Held-out (adult.test) scores of `model`."""
    reports: list[Path]
    """Report files for the bundle (unique names)."""
    class_labels: dict[int, str] | None
    """Class value -> label, when the classes are codes (census_dict's 0/1)."""
    chosen: str
    """The estimator's short name."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`: both models."""

    income: TrainedModel
    records: TrainedModel


@dataclass(frozen=True)
class _Candidate:
    make: Callable[[int], ClassifierMixin]
    grid: dict[str, list[Any]]
    fast_params: dict[str, Any]


CANDIDATES: dict[str, _Candidate] = {
    "logistic_regression": _Candidate(
        make=lambda seed: LogisticRegression(max_iter=2000), grid={"clf__C": [0.1, 1.0, 10.0]}, fast_params={}
    ),
    "gradient_boosting": _Candidate(
        # early_stopping=False: max_iter is a tuned number of trees, not a ceiling that depends on a hidden split.
        make=lambda seed: HistGradientBoostingClassifier(early_stopping=False, random_state=seed),
        grid={"clf__learning_rate": [0.05, 0.1], "clf__max_leaf_nodes": [15, 31], "clf__max_iter": [200]},
        fast_params={"clf__max_iter": 50},  # pack predicts the whole sample several times: fewer trees, fewer seconds
    ),
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def load_data(path: Path = DATA_PATH) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The vendored CSV as (features, ">50K"/"<=50K" target, "train"/"test" split); '?' reads as NaN."""
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in (*FEATURES, TARGET, "split") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return df[list(FEATURES)], df[TARGET].rename(TARGET), df["split"]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The dict-records input shape: one dict per row, a missing value left out (what the server hands the model too)."""
    rows = frame.to_dict("records")
    return [{name: value for name, value in row.items() if value == value and value is not None} for row in rows]  # NaN != NaN


def income_pipeline(classifier: ClassifierMixin) -> Pipeline:
    """census_income: columns chosen by name; a missing category becomes its own category, "Unknown"."""
    categories = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    columns = ColumnTransformer([("categories", categories, list(CATEGORICAL)), ("numbers", StandardScaler(), list(NUMERIC))])
    return Pipeline([("columns", columns), ("clf", classifier)])


def records_pipeline(*, fast: bool, seed: int) -> Pipeline:
    """census_dict: DictVectorizer (strings one-hot, numbers as they are) + random forest."""
    forest = RandomForestClassifier(
        n_estimators=25 if fast else 100,
        max_depth=10 if fast else 16,  # bounded trees keep the bundle a few MB
        min_samples_leaf=5,
        random_state=seed,
        n_jobs=1,
    )
    return Pipeline([("vectorize", DictVectorizer(sparse=False)), ("clf", forest)])


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _table(df: pd.DataFrame | pd.Series, float_format: str = "{:.4g}") -> str:
    frame = df.to_frame() if isinstance(df, pd.Series) else df
    return str(frame.to_html(float_format=float_format.format, border=0))


def _save(fig: Figure, path: Path, dpi: int = 80) -> Path:
    fig.savefig(path, dpi=dpi, metadata={"Software": None})  # no bbox_inches="tight": it draws the figure twice
    plt.close(fig)
    return path


def write_profile(X: pd.DataFrame, y: pd.Series, split: pd.Series, reports: Path) -> list[Path]:
    """``profile.html`` (shape, types, missing values, class balance per split) and ``income_by_category.png``."""
    positive = y == POSITIVE
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, column in zip(np.ravel(axes), CATEGORICAL, strict=True):
        values = X[column].fillna(f"({MISSING})")
        counts = values.value_counts()
        top = counts.index[:10]
        rates = positive.groupby(values).mean().reindex(top)
        ax.barh([f"{label} ({counts[label]})" for label in top][::-1], rates.to_numpy()[::-1], color="tab:red")
        ax.set_xlim(0, 1)
        ax.set_title(f"{column}: share {POSITIVE}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Share earning {POSITIVE} per category (the 10 most frequent, with their counts)")
    fig.tight_layout()
    png = _save(fig, reports / "income_by_category.png", dpi=60)

    balance = pd.crosstab(split, y, margins=True, margins_name="all")
    dtypes = X.dtypes.astype(str).rename("dtype")
    missing = X.isna().sum().rename("missing ('?')")
    body = (
        f"<p>Source: <code>{html.escape(DATA_PATH.name)}</code> (UCI Adult, adult.data + adult.test, "
        "see <code>data/SOURCE.md</code>). "
        f"Shape: <b>{len(X)} rows &times; {X.shape[1]} features</b> + target <code>{TARGET}</code>.</p>\n"
        f"<h2>Column types</h2>\n{_table(dtypes)}\n"
        f"<h2>Numeric summary</h2>\n{_table(X[list(NUMERIC)].describe().T)}\n"
        f"<h2>Missing values</h2>\n<p>A missing category is imputed as <code>{MISSING}</code> "
        "(census_income) or left out of the record (census_dict); requests send null or leave the field out.</p>\n"
        f"{_table(missing)}\n"
        f"<h2>Class balance per split</h2>\n{_table(balance)}\n"
        f"<img src='{png.name}' alt='Share earning over 50K per category'>\n"
    )
    profile = reports / "profile.html"
    profile.write_text(_page("Census income: data profile", body), encoding="utf-8")
    return [profile, png]


def candidate_pipeline(name: str, *, fast: bool, seed: int) -> Pipeline:
    """census_income with candidate *name*'s defaults (or its fast parameters)."""
    candidate = CANDIDATES[name]
    return income_pipeline(candidate.make(seed)).set_params(**(candidate.fast_params if fast else {}))


def compare_models(X: pd.DataFrame, y: pd.Series, *, folds: int, fast: bool, seed: int) -> pd.DataFrame:
    """Cross-validate every census_income candidate; mean/std scores, best ROC AUC first."""
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    target = (y == POSITIVE).astype(int)
    rows: list[dict[str, Any]] = []
    for name in CANDIDATES:
        pipeline = candidate_pipeline(name, fast=fast, seed=seed)
        scores = cross_validate(pipeline, X, target, cv=cv, scoring=CV_SCORING, n_jobs=1)
        row: dict[str, Any] = {"model": name}
        for metric in CV_SCORING:
            row[f"{metric}_mean"] = float(np.mean(scores[f"test_{metric}"]))
            row[f"{metric}_std"] = float(np.std(scores[f"test_{metric}"]))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("roc_auc_mean", ascending=False, kind="stable").reset_index(drop=True)


def tune(name: str, X: pd.DataFrame, y: pd.Series, *, folds: int, seed: int) -> tuple[Estimator, dict[str, Any], float]:
    """Grid-search candidate *name* by ROC AUC; return (unfitted best pipeline, params, CV AUC)."""
    search = GridSearchCV(
        income_pipeline(CANDIDATES[name].make(seed)),
        CANDIDATES[name].grid,
        scoring="roc_auc",
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
        n_jobs=1,
        refit=False,
    )
    search.fit(X, (y == POSITIVE).astype(int))
    params = dict(search.best_params_)
    return income_pipeline(CANDIDATES[name].make(seed)).set_params(**params), params, float(search.best_score_)


def score(truth: pd.Series, predicted: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Held-out scores with >50K as the positive class."""
    actual, guessed = (truth == POSITIVE).to_numpy(), predicted == POSITIVE
    return {
        "accuracy": float(accuracy_score(actual, guessed)),
        "roc_auc": float(roc_auc_score(actual, probability)),
        "f1": float(f1_score(actual, guessed, zero_division=0)),
        "precision": float(precision_score(actual, guessed, zero_division=0)),
        "recall": float(recall_score(actual, guessed, zero_division=0)),
    }


def evaluation_plots(truth: pd.Series, predicted: np.ndarray, probability: np.ndarray, reports: Path, name: str) -> list[Path]:
    """``roc_curve.png`` and ``confusion_matrix.png`` on the test split."""
    fig, ax = plt.subplots(figsize=(5, 5))
    RocCurveDisplay.from_predictions(truth == POSITIVE, probability, name=name, ax=ax, plot_chance_level=True)
    ax.set_title("ROC curve (adult.test)")
    fig.tight_layout()
    roc = _save(fig, reports / "roc_curve.png")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(truth, predicted, labels=[NEGATIVE, POSITIVE], cmap="Blues", colorbar=False, ax=ax)
    ax.set_title("Confusion matrix (adult.test)")
    fig.tight_layout()
    matrix = _save(fig, reports / "confusion_matrix.png")
    return [roc, matrix]


def write_evaluation(reports: Path, title: str, description: str, metrics: dict[str, float], pngs: list[Path], extra: str = "") -> Path:
    """``evaluation.html``: what was fitted, the held-out scores and the plots."""
    metrics_table = _table(pd.Series(metrics, name="adult.test").rename_axis("metric"), "{:.4f}")
    images = "\n".join(f"<img src='{png.name}' alt='{html.escape(png.stem)}'>" for png in pngs)
    body = (
        f"<p>{description} See also the <a href='profile.html'>data profile</a>.</p>\n{extra}"
        f"<h2>Held-out scores (adult.test, positive class {html.escape(POSITIVE)})</h2>\n{metrics_table}\n"
        f"<h2>Plots</h2>\n{images}\n"
    )
    path = reports / "evaluation.html"
    path.write_text(_page(title, body), encoding="utf-8")
    return path


def train_income(
    X_train: pd.DataFrame, y_train: pd.Series, X_test: pd.DataFrame, y_test: pd.Series, reports: Path, *, fast: bool, seed: int
) -> TrainedModel:
    """Compare, tune (not with ``fast``), fit on the train split and score census_income on the test split."""
    folds = 3 if fast else 5
    if fast:  # compare on a stratified subsample, with the fast parameters and no grid search
        X_cv, _, y_cv, _ = train_test_split(X_train, y_train, train_size=FAST_COMPARE_ROWS, stratify=y_train, random_state=seed)
    else:
        X_cv, y_cv = X_train, y_train
    comparison = compare_models(X_cv, y_cv, folds=folds, fast=fast, seed=seed)
    comparison_csv = reports / "model_comparison.csv"
    comparison.to_csv(comparison_csv, index=False, float_format="%.6f")
    chosen = str(comparison.loc[0, "model"])
    scores = ", ".join(f"{row.model} AUC {row.roc_auc_mean:.4f}" for row in comparison.itertuples())
    print(f"      {folds}-fold CV on {len(X_cv)} train rows: {scores}")
    if fast:
        pipeline, params = candidate_pipeline(chosen, fast=True, seed=seed), CANDIDATES[chosen].fast_params
        cv_auc = float(comparison.loc[0, "roc_auc_mean"])
    else:
        pipeline, params, cv_auc = tune(chosen, X_train, y_train, folds=folds, seed=seed)
    model = pipeline.fit(X_train, y_train)
    predicted = model.predict(X_test)
    probability = model.predict_proba(X_test)[:, list(model.classes_).index(POSITIVE)]
    metrics = score(y_test, predicted, probability)
    pngs = evaluation_plots(y_test, predicted, probability, reports, chosen)
    params_html = (
        _table(pd.DataFrame({"value": [repr(v) for v in params.values()]}, index=pd.Index(list(params), name="param")))
        if params
        else "<p>(default parameters)</p>"
    )
    extra = (
        f"<h2>Model comparison ({folds}-fold stratified CV on {len(X_cv)} rows of adult.data)</h2>\n"
        f"{_table(comparison.set_index('model'), '{:.4f}')}\n"
        f"<h2>Chosen: <code>{html.escape(chosen)}</code> (CV ROC AUC {cv_auc:.4f})</h2>\n{params_html}\n"
    )
    description = (
        f"census_income: a ColumnTransformer selecting columns by name (imputation of missing categories as "
        f"<code>{MISSING}</code>, one-hot encoding, scaling) then {html.escape(chosen)}, fitted on the {len(X_train)} rows "
        f"of adult.data and scored on the {len(X_test)} rows of adult.test."
    )
    evaluation = write_evaluation(reports, "Census income: model evaluation", description, metrics, pngs, extra)
    return TrainedModel(model, X_train, metrics, [comparison_csv, *pngs, evaluation], None, chosen)


def train_records(
    X_train: pd.DataFrame, y_train: pd.Series, X_test: pd.DataFrame, y_test: pd.Series, reports: Path, *, fast: bool, seed: int
) -> TrainedModel:
    """Fit census_dict on dict records and a 0/1 target; score it on the test split."""
    model = records_pipeline(fast=fast, seed=seed).fit(records(X_train), (y_train == POSITIVE).astype(int).to_numpy())
    test_records = records(X_test)
    probability = model.predict_proba(test_records)[:, list(model.classes_).index(1)]
    predicted = np.array([DICT_CLASS_LABELS[int(value)] for value in model.predict(test_records)])
    metrics = score(y_test, predicted, probability)
    pngs = evaluation_plots(y_test, predicted, probability, reports, "random_forest")
    forest = model.named_steps["clf"]
    description = (
        f"census_dict (dict records): DictVectorizer + RandomForestClassifier({forest.n_estimators} trees, "
        f"max_depth={forest.max_depth}, min_samples_leaf={forest.min_samples_leaf}) on dict records, a missing value "
        f"left out of its record; target 1 = {html.escape(POSITIVE)}. Fitted on the {len(X_train)} rows of adult.data, "
        f"scored on the {len(X_test)} rows of adult.test."
    )
    evaluation = write_evaluation(reports, "Census income (dict records): model evaluation", description, metrics, pngs)
    return TrainedModel(model, X_train, metrics, [*pngs, evaluation], dict(DICT_CLASS_LABELS), "random_forest")


def train(out_dir: Path, *, fast: bool = False, seed: int = 0) -> TrainResult:
    """Run the whole flow for both models and return them with their samples, metrics and reports."""
    start = time.perf_counter()
    # One thread: HistGradientBoosting's OpenMP threads spin when the machine is busy (4x slower on 2 shared cores).
    with threadpool_limits(limits=1):
        X, y, split = load_data()
        print(f"[1/4] loaded {len(X)} rows x {X.shape[1]} features, {int((y == POSITIVE).sum())} with {POSITIVE}")
        reports = Path(out_dir) / "reports"
        income_dir, records_dir = reports / "census_income", reports / "census_dict"
        income_dir.mkdir(parents=True, exist_ok=True)
        records_dir.mkdir(parents=True, exist_ok=True)
        profile = write_profile(X, y, split, income_dir)
        for path in profile:
            (records_dir / path.name).write_bytes(path.read_bytes())
        train_rows, test_rows = (split == "train").to_numpy(), (split == "test").to_numpy()
        X_train, y_train, X_test, y_test = X[train_rows], y[train_rows], X[test_rows], y[test_rows]
        print(f"[2/4] UCI's split: train={len(X_train)} (adult.data) test={len(X_test)} (adult.test)")
        income = train_income(X_train, y_train, X_test, y_test, income_dir, fast=fast, seed=seed)
        income = _with_reports(income, profile)
        print(f"[3/4] census_income ({income.chosen}): " + "  ".join(f"{k}={v:.4f}" for k, v in income.metrics.items()))
        by_records = train_records(X_train, y_train, X_test, y_test, records_dir, fast=fast, seed=seed)
        by_records = _with_reports(by_records, [records_dir / path.name for path in profile])
        print("[4/4] census_dict (random_forest): " + "  ".join(f"{k}={v:.4f}" for k, v in by_records.metrics.items()))
    print(f"      done in {time.perf_counter() - start:.1f}s; reports in {reports}")
    return TrainResult(income=income, records=by_records)


def _with_reports(trained: TrainedModel, first: list[Path]) -> TrainedModel:
    return TrainedModel(trained.model, trained.sample, trained.metrics, [*first, *trained.reports], trained.class_labels, trained.chosen)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Train the census income example models.")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument("--fast", action="store_true", help="compare on a subsample, no grid search, a smaller forest")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    train(args.out, fast=args.fast, seed=args.seed)


if __name__ == "__main__":
    main()
