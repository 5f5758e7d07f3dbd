"""Every scikit-learn estimator fitted on small data, so the skops type policy and pack→serve coverage track the installed version.

An estimator that `all_estimators()` lists but that neither fits here nor appears in `skipped()` raises `CatalogError`:
a scikit-learn upgrade that adds one has to be reviewed, not silently left out.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn import base
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import FeatureAgglomeration
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.feature_selection import (
    SelectKBest,
    SelectPercentile,
    chi2,
    f_classif,
    f_regression,
    mutual_info_classif,
    mutual_info_regression,
)
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    ExpSineSquared,
    Matern,
    PairwiseKernel,
    RationalQuadratic,
    WhiteKernel,
)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier, SGDRegressor, TweedieRegressor
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import (
    KernelDensity,
    KNeighborsClassifier,
    KNeighborsRegressor,
    LocalOutlierFactor,
    NearestNeighbors,
    RadiusNeighborsClassifier,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, KBinsDiscretizer, OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils import all_estimators
from threadpoolctl import threadpool_limits

SEED = 0
N_SAMPLES = 120
N_FEATURES = 6

Factory = Callable[[], Any]


class CatalogError(RuntimeError):
    """An estimator could not be fitted and is not in `skipped()`: the catalog needs a review."""


@dataclass(frozen=True)
class Fitted:
    """One fitted estimator, the data it was fitted on, and what sort of estimator it is."""

    name: str
    estimator: Any
    X: Any
    y: Any
    kind: str
    multioutput: bool = False

    @property
    def plain_numeric(self) -> bool:
        """X is a finite 2-D float array and y (if any) is 1-D: what a plain predict request carries."""
        return _is_plain(self.X) and (self.y is None or (isinstance(self.y, np.ndarray) and self.y.ndim == 1))


@dataclass(frozen=True)
class Spec:
    """How to build an unfitted estimator and which `datasets()` entry to fit it on."""

    build: Factory
    data: str
    multioutput: bool = False


SKIPPED: dict[str, str] = {
    "Birch": "skops refuses to persist Birch (its CF-tree subclusters are not serializable), so it cannot be a skops model",
    "BisectingKMeans": "keeps sklearn's Cython k-means routine (_kmeans_single_lloyd/elkan) as an attribute; trusting that function "
    "would let a FunctionTransformer call it at predict time with crafted arrays, which it indexes without bounds checks",
    "HalvingGridSearchCV": "experimental search; covered by GridSearchCV, which stores the same kind of state",
    "HalvingRandomSearchCV": "experimental search; covered by RandomizedSearchCV, which stores the same kind of state",
    "FunctionTransformer[user function]": "a user-defined function is code: the type policy refuses it by design",
    "ColumnTransformer[callable selector]": "a callable column selector is code: the type policy refuses it by design",
}


def skipped() -> dict[str, str]:
    """Estimators (and variants) deliberately not fitted, with the reason."""
    return dict(SKIPPED)


@functools.cache
def datasets() -> dict[str, tuple[Any, Any]]:
    """Small deterministic datasets keyed by what an estimator needs, shared between entries: treat them as read-only."""
    rng = np.random.default_rng(SEED)
    X_cls, y_cls = make_classification(
        n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=4, n_redundant=0, n_classes=3, n_clusters_per_class=1, random_state=SEED
    )
    X_bin, y_bin = make_classification(n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=4, n_redundant=0, random_state=SEED)
    X_reg, y_reg = make_regression(n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=4, noise=0.5, random_state=SEED)
    y_pos = np.exp(y_reg / np.abs(y_reg).max())
    X_nonneg = X_cls - X_cls.min(axis=0)
    counts = rng.poisson(2.0, size=(N_SAMPLES, N_FEATURES)).astype(np.float64)
    X_unit = X_nonneg / X_nonneg.max(axis=0)
    X_cat, X_cat_reg = X_cls.copy(), X_reg.copy()
    X_cat[:, 0] = 2 * y_cls + rng.integers(0, 2, size=N_SAMPLES)
    X_cat_reg[:, 0] = np.searchsorted(np.quantile(y_reg, [0.2, 0.4, 0.6, 0.8]), y_reg)
    X_nan = X_cls.copy()
    X_nan[rng.random(X_nan.shape) < 0.1] = np.nan
    y_semi = y_cls.copy()
    y_semi[rng.random(N_SAMPLES) < 0.3] = -1
    y_multi_cls = np.column_stack([y_bin, (X_bin[:, 1] > 0).astype(np.int64)])
    y_multi_reg = np.column_stack([y_reg, 2.0 * y_reg + X_reg[:, 0]])
    colours = np.array(["red", "green", "blue", "amber"], dtype=object)
    sizes = np.array(["S", "M", "L"], dtype=object)
    strings = np.column_stack([colours[rng.integers(0, 4, N_SAMPLES)], sizes[rng.integers(0, 3, N_SAMPLES)]])
    strings_missing = strings.copy()
    strings_missing[rng.random(strings.shape) < 0.1] = None
    words = np.array(["model", "serve", "sign", "verify", "tree", "forest", "boost", "kernel", "vector", "scale"])
    texts = [" ".join(words[rng.integers(0, len(words), 6)]) for _ in range(N_SAMPLES)]
    records = [{"colour": str(strings[i, 0]), "size": str(strings[i, 1]), "x": float(X_cls[i, 0])} for i in range(N_SAMPLES)]
    frame = pd.DataFrame(
        {
            "age": X_nan[:, 0],
            "income": X_cls[:, 1],
            "score": X_cls[:, 2],
            "colour": pd.Series(strings[:, 0], dtype="category"),
            "size": strings_missing[:, 1],
        }
    )
    return {
        "cls": (X_cls, y_cls),
        "bin": (X_bin, y_bin),
        "reg": (X_reg, y_reg),
        "X": (X_cls, None),
        "X-small": (X_cls[:40], None),
        "reg-positive": (X_reg, y_pos),
        "reg-float32": (X_reg.astype(np.float32), y_reg),
        "nonneg": (X_nonneg, y_cls),
        "nonneg-X": (X_nonneg, None),
        "counts": (counts, y_cls),
        "unit": (X_unit, None),
        "one-feature": (X_reg[:, :1].copy(), y_reg),
        "categorical-cls": (X_cat, y_cls),
        "categorical-reg": (X_cat_reg, y_reg),
        "nan": (X_nan, y_cls),
        "semi": (X_cls, y_semi),
        "multi-cls": (X_bin, y_multi_cls),
        "multi-reg": (X_reg, y_multi_reg),
        "strings": (strings, y_cls),
        "strings-missing": (strings_missing, None),
        "text": (texts, y_cls),
        "records": (records, y_cls),
        "frame": (frame, y_bin),
        "kernel": (X_cls @ X_cls.T, None),
        "kernel-cls": (X_cls @ X_cls.T, y_cls),
        "sparse-matrix": (sparse.csr_matrix(np.where(np.abs(X_cls) > 1.0, X_cls, 0.0)), y_cls),
        "sparse-array": (sparse.csr_array(np.where(np.abs(X_reg) > 1.0, X_reg, 0.0)), y_reg),
        "images": (rng.random((4, 8, 8)), None),
        "labels": (np.array(["cat", "dog", "fish"], dtype=object)[y_cls], None),
        "label-sets": ([tuple(sorted({str(c) for c in row})) for row in strings], None),
    }


def _quiet_instance(cls: type) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls()


def _default_kwargs(cls: type) -> dict[str, Any]:
    params = _quiet_instance(cls).get_params(deep=False)
    kwargs: dict[str, Any] = {}
    if "random_state" in params:
        kwargs["random_state"] = SEED
    if params.get("n_estimators") == 100:
        kwargs["n_estimators"] = 10
    return kwargs


def _lr() -> LogisticRegression:
    return LogisticRegression(max_iter=500)


def _voters() -> list[tuple[str, Any]]:
    return [("lr", _lr()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=SEED)), ("nb", GaussianNB())]


def _regressors() -> list[tuple[str, Any]]:
    return [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3, random_state=SEED)), ("knn", KNeighborsRegressor())]


def _frozen() -> Any:
    from sklearn.frozen import FrozenEstimator

    X, y = datasets()["cls"]
    return FrozenEstimator(_lr().fit(X, y))


def _mixed_frame_pipeline() -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent", missing_values=None), OneHotEncoder(handle_unknown="ignore"))
    columns = ColumnTransformer([("num", numeric, ["age", "income", "score"]), ("cat", categorical, ["colour", "size"])])
    return Pipeline([("columns", columns), ("model", HistGradientBoostingClassifier(max_iter=10, random_state=SEED))])


def _mahalanobis_knn() -> KNeighborsClassifier:
    X, _ = datasets()["cls"]
    return KNeighborsClassifier(algorithm="ball_tree", metric="mahalanobis", metric_params={"VI": np.linalg.inv(np.cov(X.T))})


def _sparse_coder() -> Any:
    from sklearn.decomposition import SparseCoder

    dictionary = np.random.default_rng(SEED).normal(size=(4, N_FEATURES))
    return SparseCoder(dictionary=dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True))


def _gpr_kernel() -> GaussianProcessRegressor:
    kernel = ConstantKernel() * Matern(nu=1.5) + RationalQuadratic() + WhiteKernel() + DotProduct() ** 2
    kernel += PairwiseKernel(metric="laplacian")
    return GaussianProcessRegressor(kernel=kernel, alpha=1e-2, normalize_y=True, optimizer=None, random_state=SEED)


# Estimators whose defaults do not fit the plain data, or that need constructor arguments.
OVERRIDES: dict[str, Spec] = {
    "AdditiveChi2Sampler": Spec(lambda: _cls("AdditiveChi2Sampler")(), "nonneg"),
    "BaggingClassifier": Spec(lambda: _cls("BaggingClassifier")(n_estimators=5, random_state=SEED), "cls"),
    "BaggingRegressor": Spec(lambda: _cls("BaggingRegressor")(n_estimators=5, random_state=SEED), "reg"),
    "BayesianGaussianMixture": Spec(lambda: _cls("BayesianGaussianMixture")(n_components=2, max_iter=20, random_state=SEED), "X"),
    "BernoulliRBM": Spec(lambda: _cls("BernoulliRBM")(n_components=8, n_iter=2, random_state=SEED), "unit"),
    "CCA": Spec(lambda: _cls("CCA")(n_components=1), "reg"),
    "CalibratedClassifierCV": Spec(lambda: CalibratedClassifierCV(LinearSVC(random_state=SEED), cv=3), "cls"),
    "CategoricalNB": Spec(lambda: _cls("CategoricalNB")(), "counts"),
    "ClassifierChain": Spec(lambda: _cls("ClassifierChain")(_lr(), random_state=SEED), "multi-cls", multioutput=True),
    "ColumnTransformer": Spec(lambda: ColumnTransformer([("scale", StandardScaler(), [0, 1, 2]), ("pca", PCA(2), [3, 4, 5])]), "cls"),
    "ComplementNB": Spec(lambda: _cls("ComplementNB")(), "nonneg"),
    "CountVectorizer": Spec(lambda: _cls("CountVectorizer")(), "text"),
    "DictVectorizer": Spec(lambda: _cls("DictVectorizer")(), "records"),
    "DictionaryLearning": Spec(lambda: _cls("DictionaryLearning")(n_components=3, max_iter=5, random_state=SEED), "X"),
    "FeatureHasher": Spec(lambda: _cls("FeatureHasher")(n_features=16), "records"),
    "FeatureUnion": Spec(lambda: FeatureUnion([("pca", PCA(2)), ("best", SelectKBest(k=2))]), "cls"),
    "FixedThresholdClassifier": Spec(lambda: _cls("FixedThresholdClassifier")(_lr(), threshold=0.4), "bin"),
    "FrozenEstimator": Spec(_frozen, "cls"),
    "GammaRegressor": Spec(lambda: _cls("GammaRegressor")(), "reg-positive"),
    "GaussianRandomProjection": Spec(lambda: _cls("GaussianRandomProjection")(n_components=3, random_state=SEED), "X"),
    "GridSearchCV": Spec(lambda: _cls("GridSearchCV")(_lr(), {"C": [0.1, 1.0]}, cv=3), "cls"),
    "HashingVectorizer": Spec(lambda: _cls("HashingVectorizer")(n_features=64), "text"),
    "HistGradientBoostingClassifier": Spec(lambda: HistGradientBoostingClassifier(max_iter=20, random_state=SEED), "cls"),
    "HistGradientBoostingRegressor": Spec(lambda: HistGradientBoostingRegressor(max_iter=20, random_state=SEED), "reg"),
    "IsotonicRegression": Spec(lambda: _cls("IsotonicRegression")(), "one-feature"),
    "KNNImputer": Spec(lambda: KNNImputer(), "nan"),
    "KernelCenterer": Spec(lambda: _cls("KernelCenterer")(), "kernel"),
    "LabelBinarizer": Spec(lambda: _cls("LabelBinarizer")(), "labels"),
    "LabelEncoder": Spec(lambda: _cls("LabelEncoder")(), "labels"),
    "LabelPropagation": Spec(lambda: _cls("LabelPropagation")(), "semi"),
    "LabelSpreading": Spec(lambda: _cls("LabelSpreading")(), "semi"),
    "LatentDirichletAllocation": Spec(lambda: _cls("LatentDirichletAllocation")(n_components=3, max_iter=5, random_state=SEED), "counts"),
    "MDS": Spec(lambda: _cls("MDS")(n_init=1, max_iter=50, random_state=SEED), "X"),
    "MLPClassifier": Spec(lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=SEED), "cls"),
    "MLPRegressor": Spec(lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=SEED), "reg"),
    "MiniBatchDictionaryLearning": Spec(
        lambda: _cls("MiniBatchDictionaryLearning")(n_components=3, max_iter=5, batch_size=32, random_state=SEED), "X"
    ),
    "MiniBatchNMF": Spec(lambda: _cls("MiniBatchNMF")(n_components=3, max_iter=20, random_state=SEED), "nonneg-X"),
    "MiniBatchSparsePCA": Spec(lambda: _cls("MiniBatchSparsePCA")(n_components=3, max_iter=5, batch_size=32, random_state=SEED), "X"),
    "MissingIndicator": Spec(lambda: _cls("MissingIndicator")(), "nan"),
    "MultiLabelBinarizer": Spec(lambda: _cls("MultiLabelBinarizer")(), "label-sets"),
    "MultiOutputClassifier": Spec(lambda: _cls("MultiOutputClassifier")(_lr()), "multi-cls", multioutput=True),
    "MultiOutputRegressor": Spec(lambda: _cls("MultiOutputRegressor")(Ridge()), "multi-reg", multioutput=True),
    "MultiTaskElasticNet": Spec(lambda: _cls("MultiTaskElasticNet")(), "multi-reg", multioutput=True),
    "MultiTaskElasticNetCV": Spec(lambda: _cls("MultiTaskElasticNetCV")(cv=3), "multi-reg", multioutput=True),
    "MultiTaskLasso": Spec(lambda: _cls("MultiTaskLasso")(), "multi-reg", multioutput=True),
    "MultiTaskLassoCV": Spec(lambda: _cls("MultiTaskLassoCV")(cv=3), "multi-reg", multioutput=True),
    "MultinomialNB": Spec(lambda: _cls("MultinomialNB")(), "nonneg"),
    "NMF": Spec(lambda: _cls("NMF")(n_components=3, max_iter=50, random_state=SEED), "nonneg-X"),
    "NeighborhoodComponentsAnalysis": Spec(lambda: _cls("NeighborhoodComponentsAnalysis")(max_iter=10, random_state=SEED), "cls"),
    "Nystroem": Spec(lambda: _cls("Nystroem")(n_components=20, random_state=SEED), "X"),
    "OneVsOneClassifier": Spec(lambda: _cls("OneVsOneClassifier")(_lr()), "cls"),
    "OneVsRestClassifier": Spec(lambda: _cls("OneVsRestClassifier")(_lr()), "cls"),
    "OutputCodeClassifier": Spec(lambda: _cls("OutputCodeClassifier")(_lr(), random_state=SEED), "cls"),
    "PLSCanonical": Spec(lambda: _cls("PLSCanonical")(n_components=1), "reg"),
    "PLSRegression": Spec(lambda: _cls("PLSRegression")(n_components=1), "reg"),
    "PLSSVD": Spec(lambda: _cls("PLSSVD")(n_components=1), "reg"),
    "PatchExtractor": Spec(lambda: _cls("PatchExtractor")(patch_size=(3, 3), random_state=SEED), "images"),
    "Pipeline": Spec(lambda: Pipeline([("scale", StandardScaler()), ("model", _lr())]), "cls"),
    "PoissonRegressor": Spec(lambda: _cls("PoissonRegressor")(), "reg-positive"),
    "QuantileTransformer": Spec(lambda: _cls("QuantileTransformer")(n_quantiles=50, random_state=SEED), "X"),
    "RFE": Spec(lambda: _cls("RFE")(_lr(), n_features_to_select=3), "cls"),
    "RFECV": Spec(lambda: _cls("RFECV")(_lr(), cv=3), "cls"),
    "RadiusNeighborsClassifier": Spec(lambda: RadiusNeighborsClassifier(radius=3.0, outlier_label="most_frequent"), "cls"),
    "RadiusNeighborsRegressor": Spec(lambda: _cls("RadiusNeighborsRegressor")(radius=3.0), "reg"),
    "RadiusNeighborsTransformer": Spec(lambda: _cls("RadiusNeighborsTransformer")(radius=3.0), "X"),
    "RandomizedSearchCV": Spec(
        lambda: _cls("RandomizedSearchCV")(Ridge(), {"alpha": [0.1, 1.0, 10.0]}, n_iter=2, cv=3, random_state=SEED), "reg"
    ),
    "RegressorChain": Spec(lambda: _cls("RegressorChain")(Ridge()), "multi-reg", multioutput=True),
    "SelectFromModel": Spec(lambda: _cls("SelectFromModel")(RandomForestClassifier(n_estimators=5, random_state=SEED)), "cls"),
    "SelfTrainingClassifier": Spec(lambda: _cls("SelfTrainingClassifier")(_lr(), max_iter=2), "semi"),
    "SequentialFeatureSelector": Spec(
        lambda: _cls("SequentialFeatureSelector")(KNeighborsClassifier(), n_features_to_select=2, cv=3), "cls"
    ),
    "SkewedChi2Sampler": Spec(lambda: _cls("SkewedChi2Sampler")(n_components=20, random_state=SEED), "nonneg-X"),
    "SparseCoder": Spec(_sparse_coder, "X"),
    "SparsePCA": Spec(lambda: _cls("SparsePCA")(n_components=3, max_iter=5, random_state=SEED), "X"),
    "SparseRandomProjection": Spec(lambda: _cls("SparseRandomProjection")(n_components=3, random_state=SEED), "X"),
    "SpectralBiclustering": Spec(lambda: _cls("SpectralBiclustering")(n_clusters=2, n_init=1, random_state=SEED), "X"),
    "MeanShift": Spec(lambda: _cls("MeanShift")(bin_seeding=True), "X"),
    "SpectralClustering": Spec(lambda: _cls("SpectralClustering")(n_clusters=3, random_state=SEED), "X"),
    "SpectralCoclustering": Spec(lambda: _cls("SpectralCoclustering")(n_clusters=2, random_state=SEED), "nonneg-X"),
    "StackingClassifier": Spec(lambda: _cls("StackingClassifier")(_voters(), final_estimator=_lr(), cv=3), "cls"),
    "StackingRegressor": Spec(lambda: _cls("StackingRegressor")(_regressors(), cv=3), "reg"),
    "TSNE": Spec(lambda: _cls("TSNE")(perplexity=5.0, max_iter=250, random_state=SEED), "X-small"),
    "TargetEncoder": Spec(lambda: _cls("TargetEncoder")(random_state=SEED), "strings"),
    "TfidfTransformer": Spec(lambda: _cls("TfidfTransformer")(), "counts"),
    "TfidfVectorizer": Spec(lambda: _cls("TfidfVectorizer")(), "text"),
    "TheilSenRegressor": Spec(lambda: _cls("TheilSenRegressor")(max_subpopulation=200, random_state=SEED), "reg"),
    "TransformedTargetRegressor": Spec(lambda: _cls("TransformedTargetRegressor")(regressor=Ridge(), transformer=StandardScaler()), "reg"),
    "TunedThresholdClassifierCV": Spec(lambda: _cls("TunedThresholdClassifierCV")(_lr(), cv=3, thresholds=20), "bin"),
    "VotingClassifier": Spec(lambda: _cls("VotingClassifier")(_voters(), voting="soft"), "cls"),
    "VotingRegressor": Spec(lambda: _cls("VotingRegressor")(_regressors()), "reg"),
}

# Variants of listed estimators whose fitted state holds different types (trees, metrics, losses, optimizers, callables).
VARIANTS: dict[str, Spec] = {
    "GridSearchCV[multi-metric]": Spec(
        lambda: _cls("GridSearchCV")(
            _lr(),
            {"C": [0.1, 1.0]},
            cv=3,
            refit="accuracy",
            scoring=["accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr", "neg_log_loss"],
        ),
        "cls",
    ),
    "RandomizedSearchCV[multi-metric]": Spec(
        lambda: _cls("RandomizedSearchCV")(
            Ridge(),
            {"alpha": [0.1, 1.0, 10.0]},
            n_iter=2,
            cv=3,
            random_state=SEED,
            refit="r2",
            scoring=["r2", "neg_mean_squared_error", "neg_mean_absolute_error"],
        ),
        "reg",
    ),
    "SVC[sparse]": Spec(lambda: SVC(random_state=SEED), "sparse-matrix"),
    "SVC[precomputed]": Spec(lambda: SVC(kernel="precomputed"), "kernel-cls"),
    "KNeighborsRegressor[sparse brute]": Spec(lambda: KNeighborsRegressor(), "sparse-array"),
    "CalibratedClassifierCV[isotonic]": Spec(lambda: CalibratedClassifierCV(GaussianNB(), method="isotonic", cv=3), "cls"),
    "CalibratedClassifierCV[ensemble=False]": Spec(lambda: CalibratedClassifierCV(SVC(random_state=SEED), ensemble=False, cv=3), "bin"),
    "ColumnTransformer[mixed frame pipeline]": Spec(_mixed_frame_pipeline, "frame"),
    "DecisionTreeRegressor[pruned]": Spec(lambda: DecisionTreeRegressor(ccp_alpha=0.5, random_state=SEED), "reg"),
    "DecisionTreeClassifier[best-first]": Spec(lambda: DecisionTreeClassifier(max_leaf_nodes=12, random_state=SEED), "cls"),
    "DecisionTreeClassifier[nan]": Spec(lambda: DecisionTreeClassifier(random_state=SEED), "nan"),
    "FeatureAgglomeration[median]": Spec(lambda: FeatureAgglomeration(n_clusters=3, pooling_func=np.median), "X"),
    "FunctionTransformer[numpy ufunc]": Spec(lambda: FunctionTransformer(np.log1p, inverse_func=np.expm1), "nonneg-X"),
    "GaussianProcessClassifier[binary]": Spec(lambda: GaussianProcessClassifier(RBF(), random_state=SEED), "bin"),
    "GaussianProcessRegressor[kernels]": Spec(_gpr_kernel, "reg"),
    "GaussianProcessRegressor[periodic]": Spec(
        lambda: GaussianProcessRegressor(ExpSineSquared(), alpha=1e-2, random_state=SEED), "one-feature"
    ),
    "GradientBoostingClassifier[binary exponential]": Spec(
        lambda: GradientBoostingClassifier(loss="exponential", n_estimators=10, random_state=SEED), "bin"
    ),
    "GradientBoostingRegressor[huber]": Spec(lambda: GradientBoostingRegressor(loss="huber", n_estimators=10, random_state=SEED), "reg"),
    "GradientBoostingRegressor[quantile]": Spec(
        lambda: GradientBoostingRegressor(loss="quantile", n_estimators=10, random_state=SEED), "reg"
    ),
    "GradientBoostingRegressor[absolute_error]": Spec(
        lambda: GradientBoostingRegressor(loss="absolute_error", n_estimators=10, random_state=SEED), "reg"
    ),
    "HistGradientBoostingClassifier[binary]": Spec(lambda: HistGradientBoostingClassifier(max_iter=10, random_state=SEED), "bin"),
    "HistGradientBoostingClassifier[categorical]": Spec(
        lambda: HistGradientBoostingClassifier(max_iter=20, categorical_features=[0], random_state=SEED), "categorical-cls"
    ),
    "HistGradientBoostingRegressor[categorical]": Spec(
        lambda: HistGradientBoostingRegressor(max_iter=20, categorical_features=[0], random_state=SEED), "categorical-reg"
    ),
    "HistGradientBoostingClassifier[nan]": Spec(lambda: HistGradientBoostingClassifier(max_iter=10, random_state=SEED), "nan"),
    "HistGradientBoostingRegressor[poisson]": Spec(lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=10), "reg-positive"),
    "HistGradientBoostingRegressor[gamma]": Spec(lambda: HistGradientBoostingRegressor(loss="gamma", max_iter=10), "reg-positive"),
    "HistGradientBoostingRegressor[absolute_error]": Spec(lambda: HistGradientBoostingRegressor(loss="absolute_error", max_iter=10), "reg"),
    "HistGradientBoostingRegressor[quantile]": Spec(
        lambda: HistGradientBoostingRegressor(loss="quantile", quantile=0.8, max_iter=10), "reg"
    ),
    "IterativeImputer": Spec(lambda: IterativeImputer(max_iter=3, random_state=SEED), "nan"),
    "KBinsDiscretizer[ordinal kmeans float32]": Spec(
        lambda: KBinsDiscretizer(encode="ordinal", strategy="kmeans", dtype=np.float32, quantile_method="averaged_inverted_cdf"), "X"
    ),
    "KNeighborsClassifier[kd_tree]": Spec(lambda: KNeighborsClassifier(algorithm="kd_tree"), "cls"),
    "KNeighborsClassifier[ball_tree]": Spec(lambda: KNeighborsClassifier(algorithm="ball_tree"), "cls"),
    "KNeighborsClassifier[brute]": Spec(lambda: KNeighborsClassifier(algorithm="brute"), "cls"),
    "KNeighborsClassifier[manhattan kd_tree]": Spec(lambda: KNeighborsClassifier(algorithm="kd_tree", metric="manhattan"), "cls"),
    "KNeighborsClassifier[chebyshev kd_tree]": Spec(lambda: KNeighborsClassifier(algorithm="kd_tree", metric="chebyshev"), "cls"),
    "KNeighborsClassifier[minkowski p=3 ball_tree]": Spec(lambda: KNeighborsClassifier(algorithm="ball_tree", p=3), "cls"),
    "KNeighborsClassifier[weighted minkowski ball_tree]": Spec(
        lambda: KNeighborsClassifier(algorithm="ball_tree", metric="minkowski", metric_params={"w": np.linspace(0.5, 1.5, N_FEATURES)}),
        "cls",
    ),
    "KNeighborsClassifier[mahalanobis ball_tree]": Spec(_mahalanobis_knn, "cls"),
    "KNeighborsClassifier[canberra ball_tree]": Spec(lambda: KNeighborsClassifier(algorithm="ball_tree", metric="canberra"), "cls"),
    "KNeighborsRegressor[ball_tree distance]": Spec(lambda: KNeighborsRegressor(algorithm="ball_tree", weights="distance"), "reg"),
    "KNeighborsRegressor[float32 kd_tree]": Spec(lambda: KNeighborsRegressor(algorithm="kd_tree"), "reg-float32"),
    "KernelDensity[ball_tree]": Spec(lambda: KernelDensity(algorithm="ball_tree", kernel="epanechnikov"), "X"),
    "LocalOutlierFactor[novelty]": Spec(lambda: LocalOutlierFactor(novelty=True), "X"),
    "LogisticRegression[binary]": Spec(lambda: _lr(), "bin"),
    "MLPClassifier[sgd]": Spec(lambda: MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", max_iter=30, random_state=SEED), "cls"),
    "MLPClassifier[lbfgs]": Spec(lambda: MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30, random_state=SEED), "cls"),
    "MLPRegressor[sgd]": Spec(lambda: MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", max_iter=30, random_state=SEED), "reg"),
    "NearestNeighbors[ball_tree]": Spec(lambda: NearestNeighbors(algorithm="ball_tree"), "X"),
    "OneHotEncoder[float32 infrequent]": Spec(
        lambda: OneHotEncoder(dtype=np.float32, handle_unknown="infrequent_if_exist", min_frequency=5), "strings"
    ),
    "OrdinalEncoder[unknown]": Spec(lambda: OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), "strings"),
    "RandomForestClassifier[oob]": Spec(lambda: RandomForestClassifier(n_estimators=10, oob_score=True, random_state=SEED), "cls"),
    "SelectKBest[chi2]": Spec(lambda: SelectKBest(chi2, k=3), "nonneg"),
    "SelectKBest[f_regression]": Spec(lambda: SelectKBest(f_regression, k=3), "reg"),
    "SelectKBest[mutual_info_classif]": Spec(lambda: SelectKBest(mutual_info_classif, k=3), "cls"),
    "SelectPercentile[mutual_info_regression]": Spec(lambda: SelectPercentile(mutual_info_regression), "reg"),
    "SelectPercentile[f_classif]": Spec(lambda: SelectPercentile(f_classif), "cls"),
    "SimpleImputer[object most_frequent]": Spec(lambda: SimpleImputer(strategy="most_frequent", missing_values=None), "strings-missing"),
    "SimpleImputer[constant indicator]": Spec(lambda: SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True), "nan"),
    "TweedieRegressor[power=1.5]": Spec(lambda: TweedieRegressor(power=1.5), "reg-positive"),
    "LinearRegression[positive]": Spec(lambda: LinearRegression(positive=True), "reg"),
    **{
        f"SGDClassifier[{loss}]": Spec(functools.partial(SGDClassifier, loss=loss, max_iter=50, random_state=SEED), "cls")
        for loss in ("log_loss", "modified_huber", "squared_hinge", "perceptron", "huber", "epsilon_insensitive")
    },
    **{
        f"SGDRegressor[{loss}]": Spec(functools.partial(SGDRegressor, loss=loss, max_iter=50, random_state=SEED), "reg")
        for loss in ("huber", "epsilon_insensitive", "squared_epsilon_insensitive")
    },
}


@functools.cache
def _estimator_classes() -> dict[str, type]:
    return dict(all_estimators())


def _cls(name: str) -> type:
    return _estimator_classes()[name]


def specs() -> dict[str, Spec]:
    """Every estimator `all_estimators()` lists (minus `skipped()`) plus the variants, by name."""
    found: dict[str, Spec] = {}
    for name, cls in _estimator_classes().items():
        if name in SKIPPED:
            continue
        found[name] = OVERRIDES.get(name) or Spec(functools.partial(_with_defaults, cls), _default_data(cls))
    found.update(VARIANTS)
    return found


def _with_defaults(cls: type) -> Any:
    return cls(**_default_kwargs(cls))


def _default_data(cls: type) -> str:
    probe = _quiet_instance(cls)
    if base.is_classifier(probe):
        return "cls"
    if base.is_regressor(probe):
        return "reg"
    if base.is_clusterer(probe) or base.is_outlier_detector(probe):
        return "X"
    return "cls"


def _data(key: str) -> tuple[Any, Any]:
    return datasets()[key]


def _is_plain(X: Any) -> bool:
    return isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind == "f" and bool(np.isfinite(X).all())


def kind_of(estimator: Any) -> str:
    """classifier, regressor, cluster, outlier, transformer or other."""
    if base.is_classifier(estimator):
        return "classifier"
    if base.is_regressor(estimator):
        return "regressor"
    if base.is_clusterer(estimator):
        return "cluster"
    if base.is_outlier_detector(estimator):
        return "outlier"
    if hasattr(estimator, "transform") or hasattr(estimator, "fit_transform"):
        return "transformer"
    return "other"


def fit_one(name: str, spec: Spec) -> Fitted:
    """Build and fit one catalog entry; any failure is a CatalogError naming it."""
    X, y = _data(spec.data)
    try:
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")
            estimator = spec.build()
            if y is None:
                estimator.fit(X)
            else:
                estimator.fit(X, y)
    except Exception as exc:
        raise CatalogError(
            f"{name} did not fit on {spec.data!r} data ({type(exc).__name__}: {exc}); fix its spec or add it to SKIPPED"
        ) from exc
    return Fitted(name, estimator, X, y, kind_of(estimator), spec.multioutput)


def fitted_estimators() -> Iterator[Fitted]:
    """Fit and yield every catalog entry, in name order."""
    for name, spec in sorted(specs().items()):
        yield fit_one(name, spec)


def predictive_estimators(*, include_multioutput: bool = False) -> Iterator[Fitted]:
    """Classifiers and regressors fitted on a plain finite 2-D float X (and 1-D y unless multi-output is asked for)."""
    for name, spec in sorted(specs().items()):
        if spec.multioutput and not include_multioutput:
            continue
        X, _ = _data(spec.data)
        if not _is_plain(X):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind = kind_of(spec.build())
        if kind in ("classifier", "regressor"):
            yield fit_one(name, spec)
