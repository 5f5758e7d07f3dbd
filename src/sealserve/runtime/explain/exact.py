"""Exact additive explanations of a last step on its own input columns: TreeSHAP for tree ensembles, coefficients for
linear models. Each returns contributions [rows, outputs, columns] and a base value [rows, outputs] that sum to the
model output the method names (log-odds, probability, value or margin)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealserve.trust.boosters.served import booster_of, library_of_booster

SKLEARN_TREES = frozenset(
    {
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "IsolationForest",
    }
)
LINEAR_EXTRA = frozenset({"LinearSVC", "LinearSVR"})
PROBABILITY_TREES = ("DecisionTree", "ExtraTree", "RandomForest", "ExtraTrees")


@dataclass(frozen=True)
class Attribution:
    """Contributions [rows, outputs, columns] and base values [rows, outputs]; `output` names what they add up to."""

    contributions: np.ndarray
    base: np.ndarray
    output: str
    method: str


Method = Callable[[np.ndarray], Attribution]


class Unsupported(Exception):
    """No exact method for this last step (the caller may try the model-agnostic one)."""


def exact_method(final: Any, column_means: list[float] | None) -> Method:
    """The exact method for `final`, prepared once (a TreeSHAP explainer is built here, not per request)."""
    booster = booster_of(final)
    if booster is not None:
        return _booster_method(booster, library_of_booster(booster), final)
    kind = type(final).__name__
    if kind in SKLEARN_TREES:
        return _sklearn_tree_method(final, kind)
    if is_linear(final):
        return _linear_method(final, column_means)
    raise Unsupported(f"{type(final).__name__} has no exact explanation method")


def _booster_method(booster: Any, library: str, final: Any) -> Method:
    output = _booster_output(booster, library)

    def explain(columns: np.ndarray) -> Attribution:
        if library == "xgboost":
            import xgboost

            raw = np.asarray(booster.predict(xgboost.DMatrix(columns), pred_contribs=True, validate_features=False), dtype=np.float64)
            if raw.ndim == 2:
                raw = raw[:, None, :]
        else:
            raw = np.asarray(booster.predict(columns, pred_contrib=True), dtype=np.float64)
            width = columns.shape[1] + 1
            raw = raw.reshape(len(columns), raw.shape[1] // width, width)
        return Attribution(raw[:, :, :-1], raw[:, :, -1], output, "tree_shap")

    return explain


def _booster_output(booster: Any, library: str) -> str:
    if library == "xgboost":
        objective = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
    else:
        objective = str(booster.params.get("objective") or _lightgbm_objective(booster))
    if objective in ("binary:logistic", "binary", "cross_entropy", "xentropy"):
        return "log_odds"
    if objective.startswith(("reg:squared", "reg:absolute", "reg:pseudohuber", "reg:quantile", "regression", "huber", "fair", "quantile")):
        return "value"
    return "margin"


def _lightgbm_objective(booster: Any) -> str:
    for line in booster.model_to_string(num_iteration=0).splitlines()[:40]:
        if line.startswith("objective="):
            return str(line.split("=", 1)[1].split(" ", 1)[0])
    return ""


def _sklearn_tree_method(final: Any, kind: str) -> Method:
    try:
        import shap  # numba and llvmlite: imported on the first explanation only, never at start
    except ImportError:
        raise Unsupported("TreeSHAP for scikit-learn trees needs the shap package, which is not installed") from None
    try:
        explainer = shap.TreeExplainer(final)
    except Exception as exc:
        raise Unsupported(f"TreeSHAP does not take this {kind}: {exc}") from None
    classifier = hasattr(final, "classes_")
    output = "score" if kind == "IsolationForest" else ("probability" if kind.startswith(PROBABILITY_TREES) and classifier else None)
    if output is None:
        output = ("log_odds" if len(final.classes_) == 2 else "margin") if classifier else "value"

    def explain(columns: np.ndarray) -> Attribution:
        values = np.asarray(explainer.shap_values(columns, check_additivity=False), dtype=np.float64)
        values = values[:, None, :] if values.ndim == 2 else np.transpose(values, (0, 2, 1))
        expected = np.broadcast_to(np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64)), values.shape[:2])
        return Attribution(values, np.array(expected), output, "tree_shap")

    return explain


def _linear_method(final: Any, column_means: list[float] | None) -> Method:
    coef = np.atleast_2d(np.asarray(final.coef_, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(getattr(final, "intercept_", 0.0), dtype=np.float64), (coef.shape[0],))
    if column_means is None:
        raise Unsupported(
            "a linear model is explained against the means of its input columns, which this bundle does not record (repack it)"
        )
    means = np.asarray(column_means, dtype=np.float64)
    if means.shape != (coef.shape[1],):
        raise Unsupported(f"the bundle records {len(means)} column means; the model takes {coef.shape[1]} columns")
    classifier = hasattr(final, "classes_")
    logistic = type(final).__name__.startswith("LogisticRegression")
    output = ("log_odds" if logistic and coef.shape[0] == 1 else "margin") if classifier else "value"
    base = intercept + coef @ means

    def explain(columns: np.ndarray) -> Attribution:
        contributions = coef[None, :, :] * (columns - means)[:, None, :]
        return Attribution(contributions, np.broadcast_to(base, (len(columns), len(base))).copy(), output, "linear")

    return explain


def is_linear(final: Any) -> bool:
    """A scikit-learn linear model: its output is coef · x + intercept, so its contributions are exact."""
    module, kind = type(final).__module__, type(final).__name__
    return hasattr(final, "coef_") and (module.startswith("sklearn.linear_model") or kind in LINEAR_EXTRA)


def column_means(final: Any, columns: np.ndarray) -> list[float] | None:
    """What pack records for a linear last step: the means of its input columns over the sample (None otherwise)."""
    if not is_linear(final):
        return None
    means = np.nanmean(columns, axis=0) if len(columns) else np.zeros(columns.shape[1])
    return [float(value) for value in means]
