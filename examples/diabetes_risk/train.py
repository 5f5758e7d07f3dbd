"""Train a diabetes risk classifier on the Pima Indians data (MASS Pima.tr + Pima.te).

Flow: profile the data, compare candidate models with stratified k-fold CV,
tune the best one with a small grid search, evaluate it on a held-out test
split, then refit it on all data. Reports go to ``<out>/reports/``.

Usage::

    python examples/diabetes_risk/train.py --out build/diabetes [--fast]

Packing and signing the model is done by the caller (see ``make serve``).
"""

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
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

DATA_PATH = Path(__file__).resolve().parent / "data" / "pima.csv.gz"
FEATURES: tuple[str, ...] = (
    "pregnancies",
    "glucose",
    "blood_pressure",
    "skin_thickness",
    "bmi",
    "pedigree",
    "age",
)
TARGET = "diabetes"
CLASS_LABELS: dict[int, str] = {0: "no_diabetes", 1: "diabetes"}
TEST_SIZE = 0.25
CV_SCORING = {"accuracy": "accuracy", "roc_auc": "roc_auc", "f1": "f1"}

Estimator = Any  # a fitted scikit-learn classifier (estimator or Pipeline)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`."""

    model: Estimator
    """Tuned estimator refit on all data (fit on a float64 numpy array)."""
    features: pd.DataFrame
    """X used for the final fit: columns in ``FEATURES`` order, float64."""
    target: pd.Series
    """y used for the final fit (0/1, int64)."""
    metrics: dict[str, float]
    """Held-out test metrics of the tuned model."""
    reports: list[Path]
    """Report files written under ``<out_dir>/reports/``."""
    class_labels: dict[int, str]
    """Class index -> label name."""


@dataclass(frozen=True)
class _Candidate:
    make: Callable[[int], BaseEstimator]
    grid: dict[str, list[Any]]
    fast_grid: dict[str, list[Any]]


def _scaled(clf: ClassifierMixin) -> Pipeline:
    return Pipeline([("scaler", StandardScaler()), ("clf", clf)])


CANDIDATES: dict[str, _Candidate] = {
    "logistic_regression": _Candidate(
        make=lambda seed: _scaled(LogisticRegression(max_iter=1000)),
        # C <= 0.01 keeps ROC AUC flat but squashes probabilities toward the base rate.
        grid={"clf__C": [0.1, 0.3, 1.0, 3.0, 10.0]},
        fast_grid={"clf__C": [0.1, 1.0]},
    ),
    "random_forest": _Candidate(
        make=lambda seed: RandomForestClassifier(n_estimators=200, random_state=seed),
        grid={
            "max_depth": [None, 4, 8],
            "min_samples_leaf": [1, 5],
            "max_features": ["sqrt", 0.5],
        },
        fast_grid={"max_depth": [None, 5], "n_estimators": [100]},
    ),
    "gradient_boosting": _Candidate(
        make=lambda seed: GradientBoostingClassifier(random_state=seed),
        grid={
            "learning_rate": [0.03, 0.1],
            "n_estimators": [50, 150],
            "max_depth": [2, 3],
        },
        fast_grid={"learning_rate": [0.05, 0.1], "max_depth": [2]},
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


def load_data(path: Path = DATA_PATH) -> tuple[pd.DataFrame, pd.Series]:
    """Read the vendored CSV; return float64 features and the 0/1 target."""
    df = pd.read_csv(path)
    missing = [c for c in (*FEATURES, TARGET) if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    X = df[list(FEATURES)].astype("float64")
    y = df[TARGET].astype("int64").rename(TARGET)
    return X, y


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _table(df: pd.DataFrame | pd.Series, float_format: str = "{:.4g}") -> str:
    frame = df.to_frame() if isinstance(df, pd.Series) else df
    return str(frame.to_html(float_format=float_format.format, border=0))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def write_profile(X: pd.DataFrame, y: pd.Series, reports: Path) -> list[Path]:
    """Write ``profile.html`` plus ``feature_histograms.png``; return both paths."""
    names = [CLASS_LABELS[0], CLASS_LABELS[1]]
    cols = 4
    rows = -(-len(X.columns) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows))
    flat = list(np.ravel(axes))
    for ax, col in zip(flat, X.columns, strict=False):
        bins = np.histogram_bin_edges(X[col], bins=20)
        for cls, color in ((0, "tab:blue"), (1, "tab:red")):
            ax.hist(
                X.loc[y == cls, col],
                bins=bins,
                alpha=0.55,
                color=color,
                label=names[cls],
            )
        ax.set_title(col)
        ax.set_ylabel("count")
    flat[0].legend()
    counts = y.value_counts().sort_index()
    last = flat[len(X.columns)] if len(flat) > len(X.columns) else None
    if last is not None:
        last.bar(names, [counts.get(0, 0), counts.get(1, 0)], color=["tab:blue", "tab:red"])
        last.set_title("class balance")
    for ax in flat[len(X.columns) + 1 :]:
        ax.axis("off")
    fig.suptitle("Feature distributions by class")
    fig.tight_layout()
    hist_png = _save(fig, reports / "feature_histograms.png")

    balance = pd.DataFrame(
        {
            "label": [CLASS_LABELS[int(i)] for i in counts.index],
            "count": counts.to_numpy(),
        },
        index=counts.index.rename(TARGET),
    )
    balance["fraction"] = balance["count"] / balance["count"].sum()
    dtypes = pd.concat([X, y], axis=1).dtypes.astype(str).rename("dtype")
    missing = pd.concat([X, y], axis=1).isna().sum().rename("missing")
    body = (
        f"<p>Source: <code>{html.escape(DATA_PATH.name)}</code> "
        "(MASS Pima.tr + Pima.te, see <code>data/SOURCE.md</code>). "
        f"Shape: <b>{len(X)} rows &times; {X.shape[1]} features</b> "
        f"+ target <code>{TARGET}</code>.</p>\n"
        f"<h2>Column types</h2>\n{_table(dtypes)}\n"
        f"<h2>Summary statistics</h2>\n{_table(X.describe().T)}\n"
        f"<h2>Missing values</h2>\n{_table(missing)}\n"
        f"<h2>Class balance</h2>\n{_table(balance, '{:.3f}')}\n"
        "<h2>Feature histograms by class</h2>\n"
        f"<img src='{hist_png.name}' alt='Per-feature histograms split by class'>\n"
    )
    profile = reports / "profile.html"
    profile.write_text(_page("Diabetes risk: data profile", body), encoding="utf-8")
    return [profile, hist_png]


def compare_models(X: np.ndarray, y: np.ndarray, *, folds: int, seed: int) -> pd.DataFrame:
    """Cross-validate every candidate; return mean/std scores sorted by ROC AUC."""
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    rows: list[dict[str, Any]] = []
    for name, cand in CANDIDATES.items():
        scores = cross_validate(cand.make(seed), X, y, cv=cv, scoring=CV_SCORING, n_jobs=1)
        row: dict[str, Any] = {"model": name}
        for metric in CV_SCORING:
            row[f"{metric}_mean"] = float(np.mean(scores[f"test_{metric}"]))
            row[f"{metric}_std"] = float(np.std(scores[f"test_{metric}"]))
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("roc_auc_mean", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def tune(name: str, X: np.ndarray, y: np.ndarray, *, folds: int, fast: bool, seed: int) -> tuple[Estimator, dict[str, Any], float]:
    """Grid-search candidate *name* by ROC AUC; return (estimator, params, CV AUC)."""
    cand = CANDIDATES[name]
    search = GridSearchCV(
        cand.make(seed),
        cand.fast_grid if fast else cand.grid,
        scoring="roc_auc",
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
        n_jobs=1,
        refit=True,
    )
    search.fit(X, y)
    return search.best_estimator_, dict(search.best_params_), float(search.best_score_)


def evaluate(model: Estimator, X: np.ndarray, y: np.ndarray, reports: Path, name: str) -> tuple[dict[str, float], list[Path]]:
    """Score *model* on the test split and write the three evaluation PNGs."""
    pred = model.predict(X)
    proba = model.predict_proba(X)[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(y, pred)),
        "roc_auc": float(roc_auc_score(y, proba)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
    }
    labels = [CLASS_LABELS[0], CLASS_LABELS[1]]

    fig, ax = plt.subplots(figsize=(5, 5))
    RocCurveDisplay.from_estimator(model, X, y, name=name, ax=ax, plot_chance_level=True)
    ax.set_title("ROC curve (held-out test split)")
    roc_png = _save(fig, reports / "roc_curve.png")

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_estimator(model, X, y, display_labels=labels, cmap="Blues", colorbar=False, ax=ax)
    ax.set_title("Confusion matrix (held-out test split)")
    cm_png = _save(fig, reports / "confusion_matrix.png")

    text = classification_report(y, pred, target_names=labels, digits=3, zero_division=0)
    n_lines = text.count("\n") + 2
    fig = plt.figure(figsize=(6.5, 0.28 * n_lines + 0.6))
    fig.text(
        0.02,
        0.97,
        f"Classification report: {name}",
        fontsize=11,
        weight="bold",
        va="top",
    )
    fig.text(0.02, 0.86, text, family="monospace", fontsize=10, va="top")
    report_png = _save(fig, reports / "classification_report.png")
    return metrics, [roc_png, cm_png, report_png]


def write_evaluation(
    reports: Path,
    comparison: pd.DataFrame,
    *,
    chosen: str,
    params: dict[str, Any],
    cv_auc: float,
    metrics: dict[str, float],
    pngs: list[Path],
    n_train: int,
    n_test: int,
    folds: int,
) -> Path:
    """Write ``evaluation.html`` (comparison, chosen model, test metrics, plots)."""
    params_df = pd.DataFrame(
        {"value": [repr(v) for v in params.values()]},
        index=pd.Index(list(params), name="param"),
    )
    metrics_df = pd.Series(metrics, name="test score").rename_axis("metric")
    imgs = "\n".join(f"<img src='{p.name}' alt='{html.escape(p.stem)}'>" for p in pngs)
    body = (
        f"<p>Train split: {n_train} rows, held-out test split: {n_test} rows "
        f"(stratified, {TEST_SIZE:.0%} test). "
        "See also the <a href='profile.html'>data profile</a>.</p>\n"
        f"<h2>Model comparison ({folds}-fold stratified CV on the train split)</h2>\n"
        f"{_table(comparison.set_index('model'), '{:.4f}')}\n"
        f"<h2>Chosen model: <code>{html.escape(chosen)}</code></h2>\n"
        f"<p>Best by mean CV ROC AUC, then tuned with GridSearchCV "
        f"(best CV ROC AUC {cv_auc:.4f}).</p>\n"
        f"{_table(params_df) if params else '<p>(default parameters)</p>'}\n"
        f"<h2>Held-out test metrics</h2>\n{_table(metrics_df, '{:.4f}')}\n"
        f"<h2>Plots</h2>\n{imgs}\n"
    )
    path = reports / "evaluation.html"
    path.write_text(_page("Diabetes risk: model evaluation", body), encoding="utf-8")
    return path


def train(out_dir: Path, *, fast: bool = False, seed: int = 0) -> TrainResult:
    """Run the whole flow and return the final model, data, metrics and reports."""
    start = time.perf_counter()
    reports = Path(out_dir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    folds = 3 if fast else 5

    X, y = load_data()
    print(f"[1/6] loaded {len(X)} rows x {X.shape[1]} features, {int(y.sum())} positive")
    written = write_profile(X, y, reports)

    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    Xtr, Xte = X_tr.to_numpy(dtype="float64"), X_te.to_numpy(dtype="float64")
    ytr, yte = y_tr.to_numpy(), y_te.to_numpy()
    print(f"[2/6] split: train={len(Xtr)} test={len(Xte)} (stratified, seed={seed})")

    comparison = compare_models(Xtr, ytr, folds=folds, seed=seed)
    csv_path = reports / "model_comparison.csv"
    comparison.to_csv(csv_path, index=False, float_format="%.6f")
    written.append(csv_path)
    print(f"[3/6] {folds}-fold CV on the train split:")
    print(f"      {'model':<22}{'accuracy':>10}{'roc_auc':>10}{'f1':>10}")
    for row in comparison.itertuples(index=False):
        scores = (row.accuracy_mean, row.roc_auc_mean, row.f1_mean)
        print(f"      {row.model:<22}" + "".join(f"{v:>10.4f}" for v in scores))

    chosen = str(comparison.loc[0, "model"])
    tuned, params, cv_auc = tune(chosen, Xtr, ytr, folds=folds, fast=fast, seed=seed)
    print(f"[4/6] tuned {chosen}: best CV roc_auc={cv_auc:.4f} params={params}")

    metrics, pngs = evaluate(tuned, Xte, yte, reports, chosen)
    written.extend(pngs)
    written.append(
        write_evaluation(
            reports,
            comparison,
            chosen=chosen,
            params=params,
            cv_auc=cv_auc,
            metrics=metrics,
            pngs=pngs,
            n_train=len(Xtr),
            n_test=len(Xte),
            folds=folds,
        )
    )
    print("[5/6] test: " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

    # Final fit on ALL data, on a plain float64 array: no feature_names_in_.
    model = clone(tuned).fit(X.to_numpy(dtype="float64"), y.to_numpy())
    elapsed = time.perf_counter() - start
    print(f"[6/6] refit {chosen} on all {len(X)} rows ({elapsed:.1f}s); see {reports}")
    return TrainResult(
        model=model,
        features=X,
        target=y,
        metrics=metrics,
        reports=written,
        class_labels=dict(CLASS_LABELS),
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Train the diabetes risk example model.")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument("--fast", action="store_true", help="3-fold CV and a tiny grid")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    train(args.out, fast=args.fast, seed=args.seed)


if __name__ == "__main__":
    main()
