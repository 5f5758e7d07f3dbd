"""Explanations' math on packed, verified, loaded bundles: the efficiency property (contributions + base value ==
the model's output), agreement with the shap package, one-hot columns summed back to the client's string columns,
the model-agnostic method's budget, and the refusals a client sees as a 422."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import sealserve
from sealserve.bundle import keyring
from sealserve.bundle.keyring import Keyring
from sealserve.errors import BundleFormatError
from sealserve.runtime.build import build_model
from sealserve.runtime.bundle_model import BundleModel
from sealserve.runtime.explain.agnostic import plan
from sealserve.runtime.explain.answer import BadChoice, Choice, render
from sealserve.runtime.explain.explainer import BudgetTooSmall, Explained, Explainer, NoExplanation
from sealserve.runtime.explain.sources import client_sources, split_model, to_client, transformed, transformed_chunks
from sealserve.trust.verify import verify_bundle

NAMES = ["age", "city", "job", "hours"]
ROWS = 12


def frame(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "age": rng.uniform(20, 70, rows),
            "city": rng.choice(["paris", "rome", "oslo"], rows),
            "job": rng.choice(["clerk", "nurse", "chef", "pilot"], rows),
            "hours": rng.integers(10, 60, rows).astype(float),
        }
    )
    score = data["age"] / 10 + (data["city"] == "rome") * 2 - (data["job"] == "chef") + rng.normal(0, 1, rows)
    return data, score


def columns() -> ColumnTransformer:
    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "job"]), ("num", StandardScaler(), ["age", "hours"])]
    )


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("explain")
    key = keyring.create_signing_key(root / "key.pem", root / "keyring.json", kid="k")
    return root, key


def loaded(space: tuple[Path, Any], model: Any, name: str, sample: pd.DataFrame | None = None, **options: Any) -> BundleModel:
    """Pack (with the training frame as sample by default), verify and load as the server does (the compiled form
    serves when the model converts)."""
    root, key = space
    sample = frame()[0] if sample is None else sample
    out = sealserve.pack(model, name=name, version="1.0.0", private_key=key, out=root / f"{name}.zip", sample=sample, **options)
    verified = verify_bundle(out, Keyring.load(root / "keyring.json"))
    try:
        return build_model(verified.path, verified.metadata, runtime="auto", trusted_types=(), allow_pickle=False)
    finally:
        verified.discard()


def xgboost_model() -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=30, max_depth=3)


def lightgbm_model() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=30, verbose=-1)


def raw_output(model: Any, final: Any, data: pd.DataFrame, output: str) -> np.ndarray:
    """The output each method says it explains, computed by the fitted model itself."""
    if output in ("log_odds", "margin"):
        if hasattr(final, "get_booster"):
            return np.asarray(model.predict(data, output_margin=True)).reshape(len(data), -1)
        if type(final).__name__.startswith("LGBM"):
            return np.asarray(model.predict(data, raw_score=True)).reshape(len(data), -1)
        return np.asarray(model.decision_function(data)).reshape(len(data), -1)
    if output == "probability":
        return np.asarray(model.predict_proba(data))
    return np.asarray(model.predict(data)).reshape(len(data), -1)


CASES = {
    "xgboost": (xgboost_model, "binary"),
    "lightgbm": (lightgbm_model, "binary"),
    "random_forest": (lambda: RandomForestClassifier(n_estimators=25, max_depth=6, random_state=0), "binary"),
    "gradient_boosting": (lambda: GradientBoostingClassifier(n_estimators=40, random_state=0), "binary"),
    "hist_gradient_boosting": (lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0), "binary"),
    "logistic_regression": (lambda: LogisticRegression(max_iter=500), "binary"),
    "ridge": (lambda: Ridge(alpha=0.5), "value"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest, space: tuple[Path, Any]) -> tuple[str, Any, BundleModel, Explained]:
    build, target = CASES[request.param]
    data, score = frame()
    label = (score > score.median()).astype(int) if target == "binary" else score
    model = make_pipeline(columns(), build()).fit(data, label)
    served = loaded(space, model, request.param.replace("_", "-"))
    explained = Explainer(served, 10_000).explain(data.head(ROWS).to_dict("records"))
    return request.param, model, served, explained


def test_contributions_and_base_add_up_to_the_model_output(case: tuple[str, Any, BundleModel, Explained]) -> None:
    name, model, _, explained = case
    data = frame()[0].head(ROWS)
    expected = raw_output(model, model[-1], data, explained.output)
    total = explained.base + explained.contributions.sum(axis=2)
    assert explained.method == ("linear" if name in ("logistic_regression", "ridge") else "tree_shap")
    assert explained.contributions.shape[2] == len(NAMES)  # one-hot columns summed back to city and job
    assert total.shape == expected.shape
    # XGBoost adds its trees in float32: its own margin and its contributions agree to single precision, not better
    np.testing.assert_allclose(total, expected, rtol=1e-6 if name == "xgboost" else 0, atol=1e-6)


def test_contributions_equal_shaps_values(case: tuple[str, Any, BundleModel, Explained]) -> None:
    name, model, served, explained = case
    data = frame()[0].head(ROWS)
    split = split_model(model)
    matrix = transformed(split, data)
    if name in ("logistic_regression", "ridge"):
        record = served.metadata.explanation
        assert record is not None
        assert record.column_means is not None
        means = np.asarray(record.column_means)
        values = shap.LinearExplainer(split.final, (means, np.eye(len(means)))).shap_values(matrix)
    else:
        values = shap.TreeExplainer(split.final).shap_values(matrix, check_additivity=False)
    values = np.asarray(values)
    values = values[:, None, :] if values.ndim == 2 else np.transpose(values, (0, 2, 1))
    if name == "random_forest":
        assert values.shape[1] == 2  # shap explains both classes' probabilities, as the answer does
    ours = explained.contributions
    theirs = to_client(values, client_sources(split, NAMES), len(NAMES))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_the_answer_states_what_it_explains(case: tuple[str, Any, BundleModel, Explained]) -> None:
    name, _, served, explained = case
    classification = served.metadata.output.task == "classification"
    first_row = replace(explained, contributions=explained.contributions[:1], base=explained.base[:1], values=explained.values[:1])
    [answer] = render(first_row, NAMES, classification, Choice(top=2))
    assert answer["output"] == {"ridge": "value", "random_forest": "probability"}.get(name, "log_odds")
    assert set(answer["contributions"]) == set(NAMES)
    assert answer["value"] == pytest.approx(answer["base_value"] + sum(answer["contributions"].values()), abs=1e-9)
    assert len(answer["top"]) == 2
    assert answer["top"][0]["feature"] in NAMES
    first = frame()[0].iloc[0]
    assert all(reason["value"] == first[reason["feature"]] for reason in answer["top"])
    if classification:
        assert answer["explains"] in (0, 1)


def test_a_binary_answer_explains_the_predicted_class_or_the_one_asked(case: tuple[str, Any, BundleModel, Explained]) -> None:
    name, model, _, explained = case
    if name == "ridge":
        with pytest.raises(BadChoice, match="classification"):
            render(explained, NAMES, False, Choice(target="1"))
        return
    predicted = model.predict(frame()[0].head(ROWS))
    answers = render(explained, NAMES, True, Choice())
    assert [answer["explains"] for answer in answers] == list(predicted)
    both = render(explained, NAMES, True, Choice(target="all"))[0]["explanations"]
    assert [part["explains"] for part in both] == [0, 1]
    if explained.output == "log_odds":  # the other class's log-odds are the negation
        assert both[0]["value"] == pytest.approx(-both[1]["value"])
    with pytest.raises(BadChoice, match="not one of the model's classes"):
        render(explained, NAMES, True, Choice(target="7"))


def test_multi_class_answers_per_class(space: tuple[Path, Any]) -> None:
    data, score = frame()
    label = pd.cut(score, 3, labels=["low", "mid", "high"]).astype(str)
    model = make_pipeline(columns(), HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(data, label)
    explained = Explainer(loaded(space, model, "three-classes"), 1000).explain(data.head(5).to_dict("records"))
    assert explained.output == "margin"
    assert explained.contributions.shape == (5, 3, 4)
    np.testing.assert_allclose(explained.base + explained.contributions.sum(axis=2), model.decision_function(data.head(5)), atol=1e-6)
    predicted = render(explained, NAMES, True, Choice())
    assert [answer["explains"] for answer in predicted] == list(model.predict(data.head(5)))
    assert render(explained, NAMES, True, Choice(target="mid"))[0]["explains"] == "mid"


def test_multi_output_regression_is_explained_per_target(space: tuple[Path, Any]) -> None:
    data, score = frame()
    targets = np.column_stack([score, data["hours"] * 2])
    model = make_pipeline(columns(), Ridge()).fit(data, targets)
    served = loaded(space, model, "two-targets", targets=["risk", "cost"])
    explained = Explainer(served, 1000).explain(data.head(4).to_dict("records"))
    np.testing.assert_allclose(explained.base + explained.contributions.sum(axis=2), model.predict(data.head(4)), atol=1e-6)
    [answer] = render(explained, NAMES, False, Choice())[:1]
    assert [part["explains"] for part in answer["explanations"]] == ["risk", "cost"]


def test_the_model_agnostic_method_stays_within_its_budget(space: tuple[Path, Any]) -> None:
    data, score = frame()
    label = (score > score.median()).astype(int)
    model = make_pipeline(columns(), KNeighborsClassifier(5)).fit(data, label)
    served = loaded(space, model, "knn", background=40)
    assert served.metadata.explanation is not None
    assert served.metadata.explanation.background_rows == 40
    explainer = Explainer(served, max_evaluations=600)
    explained = explainer.explain(data.head(3).to_dict("records"))
    assert explained.method == "permutation"
    assert explained.output == "probability"
    assert explained.evaluations is not None
    assert 0 < explained.evaluations <= 600
    np.testing.assert_allclose(explained.base + explained.contributions.sum(axis=2), model.predict_proba(data.head(3)), atol=1e-9)
    with pytest.raises(BudgetTooSmall, match="at least 50 model evaluations"):
        Explainer(served, max_evaluations=49).explain(data.head(10).to_dict("records"))


def test_without_a_background_the_refusal_names_it(space: tuple[Path, Any]) -> None:
    data, score = frame()
    model = make_pipeline(columns(), KNeighborsClassifier(5)).fit(data, (score > score.median()).astype(int))
    with pytest.raises(NoExplanation, match=r"KNeighborsClassifier has no exact explanation method.*--background N"):
        Explainer(loaded(space, model, "knn-bare"), 1000)


def test_clustering_has_no_method_without_a_background(space: tuple[Path, Any]) -> None:
    data, _ = frame()
    model = make_pipeline(columns(), KMeans(3, n_init=2, random_state=0)).fit(data)
    with pytest.raises(NoExplanation, match="no explanation method for this task"):
        Explainer(loaded(space, model, "clusters"), 1000)


def test_a_plan_uses_every_background_row_before_more_orders() -> None:
    assert plan(rows=1, features=4, background=10, max_evaluations=200) == plan(1, 4, 10, 200)
    chosen = plan(rows=1, features=4, background=10, max_evaluations=200)
    assert (chosen.background, chosen.orders) == (10, 4)
    assert chosen.evaluations(4) == 200
    assert plan(rows=2, features=4, background=10, max_evaluations=30).background == 3


def test_a_background_needs_a_sample_and_a_bounded_size(space: tuple[Path, Any]) -> None:
    root, key = space
    data, score = frame()
    model = LogisticRegression().fit(data[["age", "hours"]].to_numpy(), score > score.median())
    with pytest.raises(BundleFormatError, match="--background N draws its rows from the training sample"):
        sealserve.pack(model, name="no-sample", version="1.0.0", private_key=key, out=root / "no-sample.zip", background=5)
    with pytest.raises(BundleFormatError, match="--background takes 1 to 1000 rows, not 5000"):
        sealserve.pack(
            model, name="huge", version="1.0.0", private_key=key, out=root / "huge.zip", sample=data[["age", "hours"]], background=5000
        )


def test_an_outlier_detector_is_explained_by_its_score_with_a_background(space: tuple[Path, Any]) -> None:
    data, _ = frame()
    model = make_pipeline(columns(), IsolationForest(n_estimators=20, random_state=0)).fit(data)
    with pytest.raises(NoExplanation, match="no explanation method for this task"):
        Explainer(loaded(space, model, "outliers-bare"), 1000)
    explained = Explainer(loaded(space, model, "outliers", background=15), 1000).explain(data.head(2).to_dict("records"))
    assert (explained.method, explained.output) == ("permutation", "score")
    np.testing.assert_allclose(
        explained.base[:, 0] + explained.contributions.sum(axis=2)[:, 0], model.score_samples(data.head(2)), atol=1e-9
    )


def test_a_bare_multi_class_booster_is_explained_in_margins(space: tuple[Path, Any]) -> None:
    from xgboost import XGBClassifier

    data, score = frame()
    numeric = data[["age", "hours"]]
    label = pd.cut(score, 3, labels=False).astype(int)
    model = XGBClassifier(n_estimators=20, max_depth=3).fit(numeric.to_numpy(), label)
    served = loaded(space, model, "xgb-three", sample=numeric)
    explained = Explainer(served, 1000).explain(numeric.head(4).to_dict("records"))
    assert (explained.method, explained.output, explained.contributions.shape) == ("tree_shap", "margin", (4, 3, 2))
    margins = model.predict(numeric.head(4).to_numpy(), output_margin=True)
    np.testing.assert_allclose(explained.base + explained.contributions.sum(axis=2), margins, rtol=1e-6, atol=1e-6)


def test_a_text_model_is_explained_in_bounded_dense_chunks(space: tuple[Path, Any]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = ["good", "bad", "fine", "awful", "great", "poor", "nice", "grim"]
    rng = np.random.default_rng(0)
    texts = pd.DataFrame({"review": [" ".join(rng.choice(words, 5)) for _ in range(120)]})
    label = texts["review"].str.count("good|great|nice|fine") > 2
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts["review"], label)
    served = loaded(space, model, "reviews", sample=texts)
    explained = Explainer(served, 1000).explain(texts.head(6).to_dict("records"))
    assert explained.contributions.shape == (6, 1, 1)  # every vocabulary column sums back to the one text feature
    np.testing.assert_allclose(
        explained.base + explained.contributions.sum(axis=2), model.decision_function(texts["review"].head(6))[:, None], atol=1e-6
    )
    split = split_model(model)
    chunks = list(transformed_chunks(split, texts["review"].head(6).tolist(), max_cells=3 * len(words)))
    assert [len(chunk) for chunk in chunks] == [3, 3]
    np.testing.assert_array_equal(np.concatenate(chunks), transformed(split, texts["review"].head(6).tolist()))
