"""The reviewed skops type policy covers every scikit-learn estimator, lists only real names, and never a code-running one."""

from __future__ import annotations

import importlib
import io
import tempfile
import warnings
import zipfile
from functools import partial
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import FunctionTransformer

from sealserve.errors import SealserveError
from sealserve.trust.integrity import walk as integrity
from sealserve.trust.integrity.walk import check_structures
from sealserve.trust.load import load_joblib
from sealserve.trust.policy.pickle_rules import CLASS_ARGUMENTS, DATA_ONLY_STATE, JOBLIB_TYPES, pickle_policy
from sealserve.trust.policy.trusted_types import (
    CHECKED,
    DEFAULT_TRUSTED_TYPES,
    PARTIAL,
    PARTIAL_FUNCTIONS,
    TRUSTED_CALLABLES,
    TRUSTED_TYPES,
    refused_types,
)
from tools.sklearn_catalog import fitted_estimators, predictive_estimators, skipped

DENIED_NAMES = {
    "builtins.eval",
    "builtins.exec",
    "builtins.compile",
    "builtins.getattr",
    "builtins.setattr",
    "builtins.__import__",
    "builtins.open",
    "builtins.breakpoint",
    "functools.partial",
    "functools.reduce",
    "operator.attrgetter",
    "operator.itemgetter",
    "operator.methodcaller",
    "sklearn.cluster._kmeans._kmeans_single_lloyd",
    "sklearn.cluster._kmeans._kmeans_single_elkan",
    "numpy.load",
    "numpy.fromfile",
    "numpy.memmap",
    "sklearn.metrics._dist_metrics.PyFuncDistance64",
    "sklearn.metrics._dist_metrics.PyFuncDistance32",
}
DENIED_PREFIXES = (
    "builtins.",
    "os.",
    "posix.",
    "nt.",
    "sys.",
    "subprocess.",
    "shutil.",
    "socket.",
    "ctypes.",
    "importlib.",
    "pickle.",
    "_pickle.",
    "copyreg.",
    "marshal.",
    "runpy.",
    "code.",
    "types.",
    "operator.",
    "functools.",
    "joblib.",
    "cloudpickle.",
    "dill.",
    "io.",
    "pathlib.",
    "tempfile.",
    "numpy.lib.npyio.",
    "numpy.ctypeslib.",
    "pandas.io.",
)


@pytest.fixture(scope="module")
def catalog() -> tuple[dict[str, tuple[list[str], list[str]]], dict[str, str]]:
    """Each catalog entry → (types skops does not trust by default, types the policy refuses) in its skops file, and
    → why the restricted unpickler refused its joblib file (absent when it loaded).

    Files the policy accepts are also loaded and must pass check_structures, as the loader will require.
    """
    files, pickles = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        pickled = Path(folder) / "model.joblib"
        for entry in fitted_estimators():
            data = skops.io.dumps(entry.estimator)
            untrusted = sorted(skops.io.get_untrusted_types(data=data))
            files[entry.name] = (untrusted, refused_types(untrusted, data))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                if not files[entry.name][1]:
                    check_structures(skops.io.loads(data, trusted=untrusted))
                joblib.dump(entry.estimator, pickled)
                try:
                    load_joblib(pickled, set())
                except SealserveError as exc:
                    pickles[entry.name] = str(exc)
    return files, pickles


@pytest.fixture(scope="module")
def catalog_files(catalog: tuple[dict[str, tuple[list[str], list[str]]], dict[str, str]]) -> dict[str, tuple[list[str], list[str]]]:
    return catalog[0]


def test_every_catalog_estimator_needs_only_trusted_types(catalog_files: dict[str, tuple[list[str], list[str]]]) -> None:
    missing = {name: refused for name, (_, refused) in catalog_files.items() if refused}
    assert not missing, (
        "skops files need types outside sealserve.trust.policy.trusted_types.TRUSTED_TYPES: "
        + "; ".join(f"{name}: {', '.join(types)}" for name, types in sorted(missing.items()))
        + ". Run `python -m tools.skops_types`, review each type, and list it with its reason only if it holds data only."
    )


def test_catalog_covers_the_estimators_the_survey_found(catalog_files: dict[str, tuple[list[str], list[str]]]) -> None:
    for name in (
        "HistGradientBoostingClassifier[categorical]",
        "KNeighborsClassifier[ball_tree]",
        "StackingClassifier",
        "SplineTransformer",
    ):
        assert catalog_files[name][0], f"{name} should need types beyond skops' defaults"
    assert len(catalog_files) > 250
    assert {"Birch", "BisectingKMeans"} <= set(skipped())


def test_predictive_estimators_are_plain_numeric_classifiers_and_regressors() -> None:
    names = set()
    for entry in predictive_estimators():
        assert entry.kind in ("classifier", "regressor"), entry.name
        assert entry.plain_numeric, entry.name
        names.add(entry.name)
    assert {"DecisionTreeClassifier", "HistGradientBoostingRegressor[categorical]", "KNeighborsClassifier[ball_tree]", "SVC"} <= names
    assert not names & {"MultiOutputRegressor", "TfidfVectorizer", "ColumnTransformer[mixed frame pipeline]", "DecisionTreeClassifier[nan]"}


def test_every_entry_resolves_to_a_class_or_listed_function() -> None:
    for name in TRUSTED_TYPES:
        module, _, attribute = name.rpartition(".")
        found = getattr(importlib.import_module(module), attribute, None)
        assert found is not None, f"{name} does not import under the installed versions"
        if name in TRUSTED_CALLABLES:
            assert callable(found), f"{name} is listed as a callable but cannot be called"
            assert not isinstance(found, type), f"{name} is listed as a callable but is a class"
        else:
            assert isinstance(found, type), f"{name} is listed as a data type but is not a class"


def test_callables_are_few_and_say_why_they_are_acceptable() -> None:
    assert len(TRUSTED_CALLABLES) <= 25
    for name, reason in TRUSTED_TYPES.items():
        assert reason.startswith("callable:") == (name in TRUSTED_CALLABLES), name
    assert frozenset(TRUSTED_TYPES) == DEFAULT_TRUSTED_TYPES


def test_no_entry_can_run_arbitrary_code() -> None:
    for name in DEFAULT_TRUSTED_TYPES | set(PARTIAL_FUNCTIONS):
        assert name not in DENIED_NAMES, name
        assert not name.startswith(DENIED_PREFIXES), name
        assert "eval" not in name.split(".")[-1].lower(), name


def test_index_bearing_types_are_validated_by_check_structures() -> None:
    structures, _ = integrity._registry()
    handled = tuple(cls for classes, _ in structures for cls in classes)
    for name, reason in TRUSTED_TYPES.items():
        if CHECKED in reason:
            module, _, attribute = name.rpartition(".")
            assert issubclass(getattr(importlib.import_module(module), attribute), handled), name


def test_partial_is_accepted_only_around_listed_functions() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 60), rng.normal(size=60)])
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(X, X[:, 0] > 1)
    data = skops.io.dumps(model)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert PARTIAL in untrusted
    assert refused_types(untrusted, data) == []

    crafted = FunctionTransformer(partial(np.mean, axis=0)).fit(X)
    data = skops.io.dumps(crafted)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert refused_types(untrusted, data) == [f"{PARTIAL} of numpy.mean"]
    assert refused_types(untrusted, data, extra_trusted=[PARTIAL]) == []


def test_partial_in_an_unreadable_schema_is_refused() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("schema.json", "{not json")
    assert refused_types([PARTIAL], archive.getvalue()) == [f"{PARTIAL} of an unreadable schema"]


def test_every_catalog_estimator_unpickles_under_the_class_allow_list(
    catalog: tuple[dict[str, tuple[list[str], list[str]]], dict[str, str]],
) -> None:
    refused = catalog[1]
    assert len(catalog[0]) > 250
    assert not refused, "joblib files the restricted unpickler refuses: " + "; ".join(f"{k}: {v}" for k, v in sorted(refused.items()))


def test_the_pickle_policy_is_exact_names_that_resolve_and_never_a_code_runner() -> None:
    policy = pickle_policy()
    assert not policy.constructors & policy.references
    reviewed = set(JOBLIB_TYPES) | set(CLASS_ARGUMENTS)  # named one by one, each with its reason (partial: per call)
    for name in policy.constructors | policy.references:
        assert name not in DENIED_NAMES - {PARTIAL}, name
        assert not name.startswith(DENIED_PREFIXES) or name in reviewed, name
        module, _, attribute = name.rpartition(".")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core.*: names older joblib files use
            found = getattr(importlib.import_module(module), attribute, None)
        assert found is not None, f"{name} does not import"
        assert not isinstance(found, type) or found.__module__ == module, f"{name} is defined in {found.__module__}: unresolvable"
    assert "sklearn.callback._scoring_monitor.ScoringMonitor" not in policy.constructors
    assert "sklearn.utils.validation.check_array" in policy.references  # a value (HistGradientBoosting), never called


def test_every_reviewed_state_hook_names_a_class_defining_one() -> None:
    for name in DATA_ONLY_STATE:
        module, _, attribute = name.rpartition(".")
        cls = getattr(importlib.import_module(module), attribute)
        assert isinstance(cls, type), name
        assert {"__setstate__", "__setstate_cython__", "__getattr__"} & set(vars(cls)), f"{name} defines no state hook"
