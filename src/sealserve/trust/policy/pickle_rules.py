"""What the restricted unpickler may resolve, call and give state to: exact names, never a module prefix.

Derived from the reviewed skops list (type_policy) plus what joblib pickles of the same estimators need: numpy's
reconstruction helpers and the few private classes pickle names where skops writes data. The catalog test in
tests/unit/test_type_policy.py loads a joblib file of every estimator under it: a new name there is a change to review.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sealserve.trust.policy.catalog import estimator_names
from sealserve.trust.policy.trusted_types import PARTIAL, PARTIAL_FUNCTIONS, TRUSTED_CALLABLES, TRUSTED_TYPES

SAFE_BUILTINS = (
    *("slice", "set", "frozenset", "complex", "bytes", "bytearray", "range"),
    *("dict", "list", "tuple", "int", "float", "str", "bool"),
)
LINK = "link function of a loss: data only (the interval it maps to)"
CY_LOSS = "compiled loss kernel behind a listed loss object: its parameters only"
JOBLIB_TYPES: dict[str, str] = {
    **{f"builtins.{name}": "builtin container or number" for name in SAFE_BUILTINS},
    "collections.OrderedDict": "builtin container",
    "joblib.numpy_pickle.NumpyArrayWrapper": "joblib's array placeholder, replaced by a checked reader of the array bytes",
    "numpy.ndarray": "array header; its bytes follow as data",
    "numpy.ma.MaskedArray": "masked array (cv_results_ of searches): data and mask",
    "numpy.random._mt19937.MT19937": "bit generator state, data only",
    "numpy.random._pcg64.PCG64": "bit generator state, data only",
    "numpy.random._pcg64.PCG64DXSM": "bit generator state, data only",
    "numpy.random._philox.Philox": "bit generator state, data only",
    "numpy.random._sfc64.SFC64": "bit generator state, data only",
    "numpy.random.bit_generator.SeedSequence": "seed sequence: entropy and pool, data only",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper": "HistGradientBoosting bin thresholds, data only",
    PARTIAL: f"constructed only around {', '.join(PARTIAL_FUNCTIONS)} (the unpickler checks every call and state)",
    **{
        f"sklearn.linear_model._sgd_fast.{name}": "SGD loss kernel: its threshold or epsilon, data only"
        for name in ("Hinge", "ModifiedHuber", "SquaredHinge", "EpsilonInsensitive", "SquaredEpsilonInsensitive")
    },
    **{
        f"sklearn._loss.link.{name}": LINK
        for name in ("HalfLogitLink", "IdentityLink", "Interval", "LogLink", "LogitLink", "MultinomialLogit")
    },
    **{
        f"sklearn._loss._loss.Cy{name}": CY_LOSS
        for name in (
            "AbsoluteError",
            "ExponentialLoss",
            "HalfBinomialLoss",
            "HalfGammaLoss",
            "HalfMultinomialLoss",
            "HalfPoissonLoss",
            "HalfSquaredError",
            "HalfTweedieLoss",
            "HalfTweedieLossIdentity",
            "HuberLoss",
            "PinballLoss",
        )
    },
}

# Helpers called while unpickling → positions of arguments that are classes or callables and must themselves have
# passed the same check (copyreg and numpy call what they are given).
CLASS_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "copyreg._reconstructor": (0, 1),
    "numpy.core.multiarray._reconstruct": (0,),
    "numpy._core.multiarray._reconstruct": (0,),
    "numpy.ma.core._mareconstruct": (0, 1),
    "numpy.random._pickle.__randomstate_ctor": (0, 1),
    "numpy.random._pickle.__generator_ctor": (0, 1),
    "numpy.random._pickle.__bit_generator_ctor": (0,),
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": (0,),
    "sklearn._loss._loss.__pyx_unpickle_CyHalfMultinomialLoss": (0,),
    "sklearn.metrics._dist_metrics.newObj": (0,),
    "sklearn.neighbors._kd_tree.newObj": (0,),
    "sklearn.neighbors._ball_tree.newObj": (0,),
    "numpy.core.multiarray.scalar": (),
    "numpy._core.multiarray.scalar": (),
    "numpy.core.numeric._frombuffer": (),
    "numpy._core.numeric._frombuffer": (),
}

DATA_ONLY_STATE: dict[str, str] = {
    "numpy.ndarray": "C code: shape, dtype and bytes",
    "numpy.dtype": "C code: a dtype description",
    "numpy.ma.MaskedArray": "ndarray state plus the mask",
    "numpy.random.bit_generator.BitGenerator": "C code: the generator state dict",
    "numpy.random.bit_generator.SeedSequence": "Cython: entropy, spawn key and pool",
    "numpy.random.mtrand.RandomState": "C code: the bit generator's state",
    "sklearn.base.BaseEstimator": "warns on a version mismatch, then updates __dict__ (other __setstate__ in the MRO are checked too)",
    "sklearn.isotonic.IsotonicRegression": "rebuilds its interpolation function from its threshold arrays",
    "sklearn.tree._tree.Tree": "Cython: node and value arrays, validated by integrity.check_structures",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": "casts its node array; validated by check_structures",
    "sklearn.utils._bunch.Bunch": "a no-op (the dict items carry the data)",
    "sklearn.utils._metadata_requests.MetadataRequest": "no __setstate__; its __getattr__ answers composite method names only",
    "sklearn.metrics._dist_metrics.DistanceMetric": "Cython's generated state setter of an empty base class: __dict__ only",
    **{
        f"sklearn.metrics._dist_metrics.{name}{bits}": "Cython: p, vec and mat arrays (PyFuncDistance, which keeps a function, is refused)"
        for name in ("DistanceMetric", "MahalanobisDistance")
        for bits in ("64", "32")
    },
    **{
        f"sklearn.neighbors._{tree}.BinaryTree{bits}": "Cython: data, index and node arrays, validated by check_structures"
        for tree in ("kd_tree", "ball_tree")
        for bits in ("64", "32")
    },
    PARTIAL: f"only around {', '.join(PARTIAL_FUNCTIONS)} (checked on every call and state)",
}


@dataclass(frozen=True)
class PicklePolicy:
    """Names a stream may resolve: `constructors` may also be called while unpickling, `references` only stored."""

    constructors: frozenset[str]
    references: frozenset[str]

    def allows(self, qualified: str) -> bool:
        return qualified in self.constructors or qualified in self.references


def numpy_names() -> tuple[frozenset[str], frozenset[str]]:
    """numpy scalar types (constructors: dtype parameters) and ufuncs (references: FunctionTransformer funcs)."""
    import numpy

    scalars = {f"numpy.{name}" for name, value in vars(numpy).items() if isinstance(value, type) and issubclass(value, numpy.generic)}
    ufuncs = {f"numpy.{name}" for name, value in vars(numpy).items() if isinstance(value, numpy.ufunc)}
    return frozenset(scalars), frozenset(ufuncs)


def pickle_policy(extra_trusted: Iterable[str] = ()) -> PicklePolicy:
    """The built-in policy plus an operator's `trusted_types` (which may be constructed; a custom __setstate__ never runs)."""
    scalars, ufuncs = numpy_names()
    data_types = {name for name in TRUSTED_TYPES if name not in TRUSTED_CALLABLES}
    constructors = estimator_names() | data_types | set(JOBLIB_TYPES) | set(CLASS_ARGUMENTS) | scalars | set(extra_trusted)
    return PicklePolicy(frozenset(constructors), frozenset(TRUSTED_CALLABLES) | ufuncs)
