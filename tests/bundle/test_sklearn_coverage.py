"""Every scikit-learn classifier and regressor in the catalog packs with defaults, verifies, loads under the default
server policy (no `trusted_types`) and serves exactly what the fitted estimator answers on its training rows.

One test per estimator (the id is its catalog name). The expected answers come from the in-memory estimator fed
its own training array; the served answers go through the real pipeline: `pack` → `verify_bundle` → `load` with the
built-in policy → `BundleModel.predict_batch` on validated records (what the native endpoint does per request).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter
from threadpoolctl import threadpool_limits

import sealserve
from sealserve.bundle import keyring, keys
from sealserve.runtime.bundle_model import BundleModel
from sealserve.trust.verify import verify_bundle
from tools.sklearn_catalog import Fitted, datasets, kind_of, predictive_estimators, specs

VERSION = "1.0.0"
SAMPLE_ROWS = 60  # pack's round-trip check and the schema need a sample, not the whole training set
TOLERANCE = 1e-9

# Catalog entries deliberately not served by this test, with the reason. Keep it short: each is a gap to justify.
EXCLUDED: dict[str, str] = {}


def _plain_numeric(X: Any) -> bool:
    return isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind == "f" and bool(np.isfinite(X).all())


def predictive_names() -> list[str]:
    """The names `predictive_estimators()` yields, found without fitting anything (collection stays cheap).

    `test_the_parametrized_names_are_the_catalog_entries` proves this is the same list.
    """
    names = []
    for name, spec in sorted(specs().items()):
        if spec.multioutput or not _plain_numeric(datasets()[spec.data][0]):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind_of(spec.build()) in ("classifier", "regressor"):
                names.append(name)
    return names


NAMES = predictive_names()
TALLY = "sklearn classifiers and regressors"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """BLAS/OpenMP pools of one thread: faster on a loaded 2-core machine, and the same results."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def catalog() -> dict[str, Fitted]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {entry.name: entry for entry in predictive_estimators() if not entry.multioutput}


def bundle_name(name: str) -> str:
    """A store-safe model name derived from the catalog name (e.g. `SVC[precomputed]` → `svc_precomputed`)."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or "model"


def serve_rows(fitted: Fitted, out: Path, key: keys.SigningKey, ring: keyring.Keyring) -> tuple[BundleModel, list[dict[str, Any]]]:
    """Pack with defaults, verify, load with the default policy and answer every training row as the native endpoint would."""
    X = fitted.X
    columns = [f"x{index}" for index in range(X.shape[1])]
    name = bundle_name(fitted.name)
    with warnings.catch_warnings():  # deprecated estimators warn when skops constructs them
        warnings.simplefilter("ignore")
        bundle = sealserve.pack(
            fitted.estimator,
            name=name,
            version=VERSION,
            private_key=key,
            out=out,
            sample=pd.DataFrame(X[:SAMPLE_ROWS], columns=columns),
        )
        verified = verify_bundle(bundle, ring, name=name, version=VERSION)
        try:
            model = BundleModel(verified.metadata, verified.load())
        finally:
            verified.discard()
        records = TypeAdapter(list[model.input_schema]).validate_python(  # type: ignore[name-defined]
            [dict(zip(columns, row, strict=True)) for row in X.tolist()]
        )
        outputs = [output.model_dump(mode="json") for output in model.predict_batch(records)]
    return model, outputs


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.skip(reason=EXCLUDED[n])) if n in EXCLUDED else n for n in NAMES])
def test_served_predictions_equal_the_fitted_estimator(
    name: str,
    catalog: dict[str, Fitted],
    signing_key: keys.SigningKey,
    trusted_keyring: keyring.Keyring,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    record_property("coverage", TALLY)
    fitted = catalog[name]
    estimator, X = fitted.estimator, fitted.X
    model, outputs = serve_rows(fitted, tmp_path / "bundle", signing_key, trusted_keyring)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.asarray(estimator.predict(X))
    assert len(outputs) == len(X)

    if fitted.kind == "regressor":
        assert model.metadata.output.task == "regression"
        served = np.array([output["prediction"] for output in outputs], dtype=np.float64)
        np.testing.assert_allclose(served, expected.reshape(len(X)).astype(np.float64), rtol=TOLERANCE, atol=0)
    else:
        assert model.metadata.output.task == "classification"
        answered = [output["prediction"] for output in outputs]
        assert [(type(value), value) for value in answered] == [(type(value), value) for value in expected.tolist()]  # 1 stays 1
        has_proba = hasattr(estimator, "predict_proba")
        assert model.metadata.output.probabilities == has_proba, "the bundle should serve probabilities exactly when the model has them"
        if has_proba:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probabilities = np.asarray(estimator.predict_proba(X), dtype=np.float64)
            labels = [str(value) for value in estimator.classes_.tolist()]
            for row, (output, wanted) in enumerate(zip(outputs, probabilities.tolist(), strict=True)):
                assert list(output["probabilities"]) == labels, f"row {row}"
                for label, probability in zip(labels, wanted, strict=True):
                    assert math.isclose(output["probabilities"][label], probability, rel_tol=0, abs_tol=TOLERANCE), f"row {row}: P({label})"
        else:
            assert all("probabilities" not in output for output in outputs)


def test_the_parametrized_names_are_the_catalog_entries(catalog: dict[str, Fitted]) -> None:
    assert sorted(catalog) == NAMES, "predictive_names() drifted from tools.sklearn_catalog.predictive_estimators()"
    assert set(EXCLUDED) <= set(NAMES), f"exclusions name estimators the catalog no longer has: {sorted(set(EXCLUDED) - set(NAMES))}"
