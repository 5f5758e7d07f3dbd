"""On every catalog model's skops file, the schema audit (trust/policy/skops_schema.py) reports exactly what skops'
`get_untrusted_types` reports: the estimators the catalog tests pack and serve (test_sklearn_coverage.py,
test_sklearn_kinds_coverage.py, with their 2-D y variants) and every other catalog entry. Dumped in memory, as
`pack` writes them (skops.io.dump), no server."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import skops.io
from skops.io import _trusted_types
from threadpoolctl import threadpool_limits

from sealserve.trust.policy.skops_schema import SNAPSHOT, untrusted_types
from tests.bundle.test_sklearn_kinds_coverage import NAMES as KIND_NAMES
from tests.bundle.test_sklearn_kinds_coverage import TWO_D, fitted
from tools.sklearn_catalog import fitted_estimators


def catalog_models() -> Iterator[tuple[str, Any]]:
    for entry in fitted_estimators():
        yield entry.name, entry.estimator
    for name in KIND_NAMES:
        if name.endswith(TWO_D):
            yield name, fitted(name)[0]


@pytest.fixture(scope="module")
def answers() -> dict[str, tuple[list[str], list[str]]]:
    """Each catalog model's (skops' answer, the schema audit's answer)."""
    found = {}
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        for name, model in catalog_models():
            data = skops.io.dumps(model)
            found[name] = (sorted(skops.io.get_untrusted_types(data=data)), untrusted_types(data))
    return found


def test_the_schema_audit_reports_what_skops_reports_on_every_catalog_model(answers: dict[str, tuple[list[str], list[str]]]) -> None:
    # skops trusts scikit-learn's experimental estimators only if they were enabled before skops was imported (here,
    # by the catalog); a server never enables them, and neither does the snapshot: those names it reports, skops not.
    enabled_here = set(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES) - SNAPSHOT.trusted["ObjectNode"]
    assert enabled_here <= {
        "sklearn.impute._iterative.IterativeImputer",
        "sklearn.model_selection._search_successive_halving.HalvingGridSearchCV",
        "sklearn.model_selection._search_successive_halving.HalvingRandomSearchCV",
    }
    differ = {
        name: (by_skops, by_schema) for name, (by_skops, by_schema) in answers.items() if set(by_schema) - enabled_here != set(by_skops)
    }
    assert not differ, "\n".join(f"{name}: skops {a}, schema {b}" for name, (a, b) in sorted(differ.items()))
    assert len(answers) > 280
    assert sum(bool(by_skops) for by_skops, _ in answers.values()) > 50  # the control: many files need untrusted types


def test_the_catalog_includes_the_models_the_serving_tests_pack(answers: dict[str, tuple[list[str], list[str]]]) -> None:
    from tests.bundle.test_sklearn_coverage import NAMES as SERVED

    assert set(SERVED) <= set(answers)
    assert set(KIND_NAMES) - set(answers) == set()
