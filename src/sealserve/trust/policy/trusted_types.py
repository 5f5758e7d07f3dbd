"""The reviewed skops types a model file may contain beyond skops' own defaults: data holders, plus a few numeric functions.

Derived from `python -m tools.skops_types` over every scikit-learn estimator; a new name there is a change to review here.
Index-bearing types are listed only because `sealserve.trust.integrity.walk.check_structures` validates them after loading.
A listed function must be safe with any arguments: FunctionTransformer or TransformedTargetRegressor can call it at predict
time with arrays taken from the file, so pure numpy/Python that validates its inputs qualifies and Cython kernels do not.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CHECKED = "its index arrays are validated by integrity.check_structures before the model runs"
LOSS = "loss object: the closs parameters, link and interval, data only"
KERNEL = "Gaussian-process kernel: hyperparameters and bounds, data only"
SPLITTER = "cross-validation splitter kept as a parameter: n_splits, shuffle, seed, data only; used at fit time"
SPARSE = f"sparse array rebuilt by scipy's load_npz (no pickle); {CHECKED}"
METRIC = f"distance metric: p and its V/VI/w parameter arrays, data only; their sizes are checked with the owning tree ({CHECKED})"
METRIC_NAMES = [
    "BrayCurtis",
    "Canberra",
    "Chebyshev",
    "Dice",
    "Euclidean",
    "Hamming",
    "Haversine",
    "Jaccard",
    "Kulsinski",
    "Mahalanobis",
    "Manhattan",
    "Matching",
    "Minkowski",
    "RogersTanimoto",
    "RussellRao",
    "SEuclidean",
    "SokalMichener",
    "SokalSneath",
]

_DATA_TYPES: dict[str, str] = {
    "numpy.dtype": "a dtype description (SimpleImputer, KBinsDiscretizer, encoders), data only",
    "sklearn.tree._tree.Tree": f"the node and value arrays of every decision tree; {CHECKED}",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": f"HistGradientBoosting node and bitset arrays; {CHECKED}",
    "sklearn.neighbors._kd_tree.KDTree": f"training data, idx_array, node_data and node_bounds; {CHECKED}",
    "sklearn.neighbors._kd_tree.KDTree64": f"float64 KDTree; {CHECKED}",
    "sklearn.neighbors._kd_tree.KDTree32": f"float32 KDTree; {CHECKED}",
    "sklearn.neighbors._ball_tree.BallTree": f"training data, idx_array, node_data and centroids; {CHECKED}",
    "sklearn.neighbors._ball_tree.BallTree64": f"float64 BallTree; {CHECKED}",
    "sklearn.neighbors._ball_tree.BallTree32": f"float32 BallTree; {CHECKED}",
    "scipy.interpolate._bsplines.BSpline": f"SplineTransformer knots, coefficients and degree; {CHECKED}",
    **{f"scipy.sparse._{fmt}.{fmt}_{kind}": SPARSE for fmt in ("csr", "csc", "coo", "bsr", "dia") for kind in ("matrix", "array")},
    **{f"sklearn.metrics._dist_metrics.{name}Distance{bits}": METRIC for name in METRIC_NAMES for bits in ("64", "32")},
    **{
        f"sklearn._loss.loss.{name}": LOSS
        for name in [
            "AbsoluteError",
            "ExponentialLoss",
            "HalfBinomialLoss",
            "HalfBinomialLossArrayAPI",
            "HalfGammaLoss",
            "HalfMultinomialLoss",
            "HalfMultinomialLossArrayAPI",
            "HalfPoissonLoss",
            "HalfPoissonLossArrayAPI",
            "HalfSquaredError",
            "HalfTweedieLoss",
            "HalfTweedieLossIdentity",
            "HuberLoss",
            "PinballLoss",
        ]
    },
    **{
        f"sklearn.gaussian_process.kernels.{name}": KERNEL
        for name in [
            "CompoundKernel",
            "ConstantKernel",
            "DotProduct",
            "ExpSineSquared",
            "Exponentiation",
            "Matern",
            "PairwiseKernel",
            "Product",
            "RBF",
            "RationalQuadratic",
            "Sum",
            "WhiteKernel",
        ]
    },
    **{
        f"sklearn.model_selection._split.{name}": SPLITTER
        for name in [
            "GroupKFold",
            "GroupShuffleSplit",
            "KFold",
            "LeaveOneGroupOut",
            "LeaveOneOut",
            "LeavePGroupsOut",
            "LeavePOut",
            "PredefinedSplit",
            "RepeatedKFold",
            "RepeatedStratifiedKFold",
            "ShuffleSplit",
            "StratifiedGroupKFold",
            "StratifiedKFold",
            "StratifiedShuffleSplit",
            "TimeSeriesSplit",
        ]
    },
    "sklearn.calibration._CalibratedClassifier": "CalibratedClassifierCV's fitted estimator plus calibrators and classes, data only",
    "sklearn.calibration._SigmoidCalibration": "Platt scaling slope and intercept, data only",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace": "binary GP classifier: kernel, training arrays, data only",
    "sklearn.impute._iterative.IterativeImputer": "the experimental imputer: per-feature estimators and statistics, data only",
    "sklearn.impute._iterative._ImputerTriplet": "a namedtuple (feature index, neighbour indices, estimator), data only",
    "sklearn.metrics._scorer._Scorer": "a scorer: a listed metric function, its sign and kwargs; only called by score() and at fit",
    "sklearn.metrics._scorer._PassthroughScorer": "the default scorer: a reference to the estimator itself, data only",
    "sklearn.metrics._scorer._CurveScorer": "TunedThresholdClassifierCV's scorer: a listed metric and thresholds; used at fit",
    "sklearn.multiclass._ConstantPredictor": "OneVsRest/OutputCode predictor for a constant column: the constant, data only",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer": "MLP optimizer state: moments and learning rate, data only",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer": "MLP optimizer state: velocities and learning rate, data only",
    "sklearn.utils._bunch.Bunch": "a dict with attribute access (named_estimators_ of Voting/Stacking), data only",
    "sklearn.utils._metadata_requests.MetadataRequest": "metadata-routing request: method names to parameter names, data only",
    "sklearn.utils._metadata_requests.MethodMetadataRequest": "metadata-routing request of one method: names only, data only",
}

SAFE_WITH_ANY_ARGUMENTS = "numpy/Python code that validates its inputs, so safe whatever arguments a file supplies"
SCORE_FUNC = f"callable: a univariate feature score that selectors call at fit time; {SAFE_WITH_ANY_ARGUMENTS}"
METRIC_FUNC = f"callable: a metric on (y_true, y_pred) that scorers call in score() and search/tuning fits; {SAFE_WITH_ANY_ARGUMENTS}"
TRUSTED_CALLABLES: dict[str, str] = {
    "numpy.mean": f"callable: FeatureAgglomeration pooling_func, a numeric reduction of the input's columns; {SAFE_WITH_ANY_ARGUMENTS}",
    "numpy.median": f"callable: FeatureAgglomeration pooling_func, a numeric reduction of the input's columns; {SAFE_WITH_ANY_ARGUMENTS}",
    "scipy._lib.array_api_compat.numpy._aliases.asarray": f"callable: BSpline._asarray, returns an array; {SAFE_WITH_ANY_ARGUMENTS}",
    "sklearn.utils.validation.check_array": f"callable: input validation (HistGradientBoosting numeric columns); {SAFE_WITH_ANY_ARGUMENTS}",
    "sklearn.feature_selection._univariate_selection.f_classif": SCORE_FUNC,
    "sklearn.feature_selection._univariate_selection.f_regression": SCORE_FUNC,
    "sklearn.feature_selection._univariate_selection.chi2": SCORE_FUNC,
    "sklearn.feature_selection._mutual_info.mutual_info_classif": SCORE_FUNC,
    "sklearn.feature_selection._mutual_info.mutual_info_regression": SCORE_FUNC,
    "sklearn.metrics._classification.accuracy_score": METRIC_FUNC,
    "sklearn.metrics._classification.balanced_accuracy_score": METRIC_FUNC,
    "sklearn.metrics._classification.f1_score": METRIC_FUNC,
    "sklearn.metrics._classification.log_loss": METRIC_FUNC,
    "sklearn.metrics._ranking.roc_auc_score": METRIC_FUNC,
    "sklearn.metrics._regression.r2_score": METRIC_FUNC,
    "sklearn.metrics._regression.mean_squared_error": METRIC_FUNC,
    "sklearn.metrics._regression.mean_absolute_error": METRIC_FUNC,
}

TRUSTED_TYPES: dict[str, str] = {**_DATA_TYPES, **TRUSTED_CALLABLES}
DEFAULT_TRUSTED_TYPES: frozenset[str] = frozenset(TRUSTED_TYPES)

PARTIAL = "functools.partial"
PARTIAL_FUNCTIONS: dict[str, str] = {
    "sklearn.utils.validation.check_array": "HistGradientBoosting with categorical features wraps check_array(dtype, ensure_all_finite) "
    "in a partial for its numeric columns",
}


def refused_types(untrusted: Iterable[str], file: Path | bytes, extra_trusted: Iterable[str] = ()) -> list[str]:
    """Which of skops' untrusted types (from get_untrusted_types) the policy refuses for this file; empty means load it.

    functools.partial is not trusted as such (unless an operator lists it in `extra_trusted`): it is accepted only if
    every partial in the file wraps a PARTIAL_FUNCTIONS entry.
    """
    refused = sorted(set(untrusted) - DEFAULT_TRUSTED_TYPES - set(extra_trusted))
    if PARTIAL in refused:
        wrapped = sorted(set(_partial_targets(file)) - set(PARTIAL_FUNCTIONS))
        refused.remove(PARTIAL)
        refused.extend(f"{PARTIAL} of {name}" for name in wrapped)
    return refused


def _partial_targets(file: Path | bytes) -> Iterator[str]:
    """The function each functools.partial in a skops file wraps, read from its schema without constructing anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(file) if isinstance(file, bytes) else file) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile):
        yield "an unreadable schema"
        return
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            if (node.get("__module__"), node.get("__class__")) == ("functools", "partial"):
                yield _wrapped_function(node)
            pending.extend(node.values())


def _wrapped_function(node: dict[str, Any]) -> str:
    func = (node.get("content") or {}).get("func") if node.get("__loader__") == "PartialNode" else None
    if not isinstance(func, dict) or func.get("__loader__") != "FunctionNode":
        return "something other than a plain function"
    return f"{func.get('__module__')}.{func.get('__class__')}"
