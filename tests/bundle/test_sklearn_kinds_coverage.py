"""Every multi-output model, clusterer, mixture and outlier detector in the scikit-learn catalog that has `predict`
packs with defaults, verifies, loads under the default policy and answers, through the server's own encoders for the
native API, KServe V1, V2 and Seldon, what the fitted estimator answers on its training rows.

The companion of test_sklearn_coverage.py (classifiers and regressors). Estimators without `predict` (DBSCAN-style
clusterers, LocalOutlierFactor without novelty) are refused by pack with that reason; `REFUSED` lists the catalog's
entries pack refuses for another reason, each with the exact message.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import TypeAdapter
from sklearn.utils import get_tags
from threadpoolctl import threadpool_limits

import sealserve
from sealserve.bundle import keyring, keys
from sealserve.errors import BundleFormatError
from sealserve.runtime.bundle_model import BundleModel
from sealserve.trust.verify import verify_bundle
from tests.support.kinds import expected_answers, same
from tools.sklearn_catalog import _is_plain, datasets, fit_one, kind_of, skipped, specs

VERSION = "1.0.0"
SAMPLE_ROWS = 60
REFUSED = {  # not fitted by the catalog; pack refuses them with these messages (docs/models.md lists them)
    "Birch": "skops cannot store this model: UnsupportedTypeException: Objects of type Birch are not supported yet.",
    "BisectingKMeans": "the server's default policy would refuse this model: it needs "
    "sklearn.cluster._bisect_k_means._BisectingTree, sklearn.cluster._kmeans._kmeans_single_lloyd.",
}


TWO_D = "[2-D y]"  # a catalog classifier or regressor that takes a 2-D y itself, fitted on one


def kind_names() -> tuple[list[str], list[str]]:
    """(with predict, without predict): the catalog's multi-output, clustering, mixture and outlier entries, and every
    classifier and regressor that takes a 2-D y natively (as `NAME[2-D y]`), on plain X."""
    served, without = [], []
    for name, spec in sorted(specs().items()):
        if not _is_plain(datasets()[spec.data][0]):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator = spec.build()
        kind = kind_of(estimator)
        if kind in ("classifier", "regressor") and not spec.multioutput:
            if spec.data in ("cls", "bin", "reg") and get_tags(estimator).target_tags.multi_output:
                served.append(name + TWO_D)
            continue
        if not (spec.multioutput or kind in ("cluster", "outlier") or get_tags(estimator).estimator_type == "density_estimator"):
            continue
        (served if hasattr(estimator, "predict") else without).append(name)
    return served, without


def fitted(name: str) -> tuple[Any, Any, str]:
    """The fitted estimator, its X, and the task it should be packed as."""
    if name.endswith(TWO_D):
        spec = specs()[name.removesuffix(TWO_D)]
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")
            estimator = spec.build()
            X, Y = datasets()["multi-cls" if kind_of(estimator) == "classifier" else "multi-reg"]
            return estimator.fit(X, Y), X, "multi_output"
    entry = fit_one(name, specs()[name])
    task = "multi_output" if entry.multioutput else "outlier_detection" if entry.kind == "outlier" else "clustering"
    return entry.estimator, entry.X, task


NAMES, WITHOUT_PREDICT = kind_names()
TALLY = "sklearn multi-output, clustering and outlier estimators"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def bundle_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or "model"


def pack_and_load(estimator: Any, X: Any, out: Path, key: keys.SigningKey, ring: keyring.Keyring) -> tuple[BundleModel, list[Any]]:
    columns = [f"x{index}" for index in range(X.shape[1])]
    name = bundle_name(type(estimator).__name__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = sealserve.pack(
            estimator, name=name, version=VERSION, private_key=key, out=out, sample=pd.DataFrame(X[:SAMPLE_ROWS], columns=columns)
        )
        verified = verify_bundle(bundle, ring, name=name, version=VERSION)
        try:
            model = BundleModel(verified.metadata, verified.load())
        finally:
            verified.discard()
        records = TypeAdapter(list[model.input_schema]).validate_python(  # type: ignore[name-defined]
            [dict(zip(columns, row, strict=True)) for row in X.tolist()]
        )
    return model, records


@pytest.mark.parametrize("name", NAMES)
def test_served_answers_equal_the_fitted_estimator_on_every_protocol(
    name: str,
    signing_key: keys.SigningKey,
    trusted_keyring: keyring.Keyring,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    record_property("coverage", TALLY)
    estimator, X, task = fitted(name)
    model, records = pack_and_load(estimator, X, tmp_path / "bundle", signing_key, trusted_keyring)
    output = model.metadata.output
    assert output.task == task
    targets = [target.name for target in output.targets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions = model.predict_records(records)
        expected = expected_answers(estimator, output.task, targets, X)
    encoders = model.encoders
    same(encoders.native(predictions), expected.native, "native")
    same(encoders.per_row(predictions), expected.v1, "V1")
    outputs = {item.name: item for item in encoders.outputs}
    for output_name, (datatype, shape, data) in expected.v2.items():
        assert (outputs[output_name].datatype, outputs[output_name].shape(len(records))) == (datatype, shape), output_name
        same(outputs[output_name].extract(predictions), data, f"V2 {output_name}")
    assert encoders.default_outputs == tuple(expected.v2)
    names, flat, width = encoders.seldon(predictions)
    rows = flat if width is None else [flat[start : start + width] for start in range(0, len(flat), width)]
    same((names, rows), expected.seldon, "Seldon")


@pytest.mark.parametrize("name", WITHOUT_PREDICT)
def test_an_estimator_without_predict_is_refused_saying_so(
    name: str, signing_key: keys.SigningKey, trusted_keyring: keyring.Keyring, tmp_path: Path
) -> None:
    estimator, X, _ = fitted(name)
    with pytest.raises(BundleFormatError, match="has no predict method: sealserve serves models that predict new rows"):
        pack_and_load(estimator, X, tmp_path / "bundle", signing_key, trusted_keyring)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_catalog_entries_pack_refuses_name_why(
    name: str, signing_key: keys.SigningKey, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    record_property("coverage_refused", TALLY)
    assert name in skipped()
    from sklearn.utils import all_estimators

    X, _ = datasets()["X"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = dict(all_estimators())[name]().fit(X)
        with pytest.raises(Exception, match=REFUSED[name].replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
            sealserve.pack(
                estimator,
                name="refused",
                version=VERSION,
                private_key=signing_key,
                out=tmp_path / "b",
                sample=pd.DataFrame(X[:SAMPLE_ROWS]),
            )
